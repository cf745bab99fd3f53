"""Prices of model ids and usage in money, in-process (``bodhi_api.prices``, ``routes/prices.py``, the ``cost`` of
``GET /bodhi/v1/usage``, its ``group_by=token``, and ``budget_spent`` in the tokens and users lists)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bodhi_api.auth.roles import Role
from tests.inprocess.fake_worker import USAGE, FakeWorker, text_answer
from tests.inprocess.harness import Account, InProcessApp, assert_error
from tests.support.backing import new_name

PRICES = "/bodhi/v1/prices"
USAGE_URL = "/bodhi/v1/usage"
TOKENS = "/bodhi/v1/tokens"
PRICED, FREE_OF_PRICE = "gpt-4o", "gpt-4o-mini"
PROMPT, COMPLETION, TOTAL = USAGE["prompt_tokens"], USAGE["completion_tokens"], USAGE["total_tokens"]  # 7, 3, 10


@pytest.fixture
async def models(power_user: Account) -> list[str]:
    await power_user.add_api_model([PRICED, FREE_OF_PRICE])
    return [PRICED, FREE_OF_PRICE]


@pytest.fixture
async def manager(bodhi: InProcessApp) -> httpx.AsyncClient:
    return await bodhi.session_client(await bodhi.create_user(Role.MANAGER))


def cost_of(requests: int, input_price: float, output_price: float) -> float:
    return requests * (PROMPT * input_price + COMPLETION * output_price) / 1_000_000


async def chat(bodhi: InProcessApp, client: httpx.AsyncClient, model: str, n: int = 1) -> None:
    for _ in range(n):
        answer = await client.post(
            "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert answer.status_code == 200, answer.text
        await bodhi.resources.drain()


async def usage(client: httpx.AsyncClient, group_by: str) -> dict[str | None, Any]:
    answer = await client.get(USAGE_URL, params={"group_by": group_by})
    assert answer.status_code == 200, answer.text
    assert answer.json()["currency"] == "USD"
    return {row["key"]: row for row in answer.json()["data"]}


async def test_a_manager_sets_lists_replaces_and_deletes_a_price(
    bodhi: InProcessApp, models: list[str], manager: httpx.AsyncClient, user: Account
) -> None:
    set_ = await manager.put(f"{PRICES}/{PRICED}", json={"input_per_million": 2.5, "output_per_million": "10"})
    assert set_.status_code == 200, set_.text
    assert {k: set_.json()[k] for k in ("model_id", "input_per_million", "output_per_million", "currency")} == {
        "model_id": PRICED,
        "input_per_million": 2.5,
        "output_per_million": 10.0,
        "currency": "USD",
    }
    listed = await user.client.get(PRICES)  # any user reads them
    assert listed.status_code == 200, listed.text
    assert listed.json()["currency"] == "USD"
    assert [(p["model_id"], p["input_per_million"]) for p in listed.json()["data"]] == [(PRICED, 2.5)]
    replaced = await manager.put(f"{PRICES}/{PRICED}", json={"input_per_million": 0, "output_per_million": 0.000001})
    assert (replaced.json()["input_per_million"], replaced.json()["output_per_million"]) == (0.0, 0.000001)
    assert (await user.client.get(f"{PRICES}/{PRICED}")).json()["output_per_million"] == 0.000001

    assert (await manager.delete(f"{PRICES}/{PRICED}")).status_code == 204
    assert (await user.client.get(PRICES)).json()["data"] == []
    missing = await user.client.get(f"{PRICES}/{PRICED}")
    assert "PUT /bodhi/v1/prices/gpt-4o" in assert_error(missing, 404, "invalid_request_error", "not_found")["message"]
    again = await manager.delete(f"{PRICES}/{PRICED}")
    assert "no price to delete" in assert_error(again, 404, "invalid_request_error")["message"]


async def test_a_price_is_for_a_served_id_of_any_kind_with_slashes(
    bodhi: InProcessApp, models: list[str], manager: httpx.AsyncClient, power_user: Account
) -> None:
    await power_user.add_api_model(["org/model"], name="Routed", base_url="https://r.example.com/v1", prefix="r/")
    set_ = await manager.put(f"{PRICES}/r/org/model", json={"input_per_million": 1, "output_per_million": 2})
    assert set_.status_code == 200, set_.text
    assert set_.json()["model_id"] == "r/org/model"

    typo = await manager.put(f"{PRICES}/gpt-4o-mimi", json={"input_per_million": 1, "output_per_million": 2})
    error = assert_error(typo, 404, "invalid_request_error", "model_not_found")
    assert "No model `gpt-4o-mimi` is served" in error["message"]
    assert "Did you mean `gpt-4o-mini`?" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input_per_million": -1, "output_per_million": 1}, "input_per_million"),
        ({"input_per_million": 1, "output_per_million": -0.5}, "output_per_million"),
        ({"input_per_million": 1}, "output_per_million"),
        ({"input_per_million": "lots", "output_per_million": 1}, "input_per_million"),
        ({"input_per_million": "NaN", "output_per_million": 1}, "input_per_million"),
        ({"input_per_million": 1, "output_per_million": 1e12}, "output_per_million"),
        ({"input_per_million": 0.0000001, "output_per_million": 1}, "input_per_million"),
    ],
)
async def test_a_price_must_be_a_non_negative_number(
    bodhi: InProcessApp, models: list[str], manager: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    refused = await manager.put(f"{PRICES}/{PRICED}", json=body)
    error = assert_error(refused, 400, "invalid_request_error")
    assert error["param"] == param
    assert f"`{param}`" in error["message"]
    assert (await manager.get(PRICES)).json()["data"] == []


async def test_only_managers_and_admins_change_prices(
    bodhi: InProcessApp, models: list[str], power_user: Account
) -> None:
    body = {"input_per_million": 1, "output_per_million": 1}
    refused = await power_user.client.put(f"{PRICES}/{PRICED}", json=body)
    assert "manager" in assert_error(refused, 403, "permission_error", "insufficient_role")["message"]
    assert_error(await power_user.client.delete(f"{PRICES}/{PRICED}"), 403, "permission_error")
    admin = await bodhi.account(Role.ADMIN)  # a token of an admin: scope power_user, so refused too
    assert (await admin.client.put(f"{PRICES}/{PRICED}", json=body)).status_code == 403
    admin_session = await bodhi.session_client(admin.user)
    assert (await admin_session.put(f"{PRICES}/{PRICED}", json=body)).status_code == 200


async def test_usage_reports_cost_per_group_and_what_is_unpriced(
    bodhi: InProcessApp, models: list[str], manager: httpx.AsyncClient, user: Account
) -> None:
    async with FakeWorker(bodhi, text_answer("Hi")).running():
        await chat(bodhi, user.client, PRICED, 3)
        await chat(bodhi, user.client, FREE_OF_PRICE, 2)
    before = await usage(user.client, "model")
    assert before[PRICED]["cost"] is None  # no price yet: unpriced, not free
    assert (before[PRICED]["unpriced_requests"], before[PRICED]["unpriced_tokens"]) == (3, 3 * TOTAL)

    price = await manager.put(f"{PRICES}/{PRICED}", json={"input_per_million": 2.5, "output_per_million": 10})
    assert price.status_code == 200, price.text

    by_model = await usage(user.client, "model")  # priced when read: past usage included
    assert by_model[PRICED]["cost"] == pytest.approx(cost_of(3, 2.5, 10))
    assert (by_model[PRICED]["unpriced_requests"], by_model[PRICED]["unpriced_tokens"]) == (0, 0)
    assert by_model[FREE_OF_PRICE]["cost"] is None
    assert (by_model[FREE_OF_PRICE]["unpriced_requests"], by_model[FREE_OF_PRICE]["unpriced_tokens"]) == (2, 2 * TOTAL)
    by_user = await usage(user.client, "user")
    mine = by_user[str(user.user.id)]
    assert mine["name"] == user.username
    assert mine["cost"] == pytest.approx(cost_of(3, 2.5, 10))  # the priced part, and the rest said apart
    assert (mine["requests"], mine["unpriced_requests"], mine["unpriced_tokens"]) == (5, 2, 2 * TOTAL)
    by_api_model = await usage(manager, "api_model")
    (row,) = by_api_model.values()
    assert row["name"] == "Example"

    free = await manager.put(f"{PRICES}/{FREE_OF_PRICE}", json={"input_per_million": 0, "output_per_million": 0})
    assert free.status_code == 200
    assert (await usage(user.client, "model"))[FREE_OF_PRICE]["cost"] == 0  # free, and priced


async def test_usage_per_token_names_the_tokens_and_a_user_sees_only_their_own(
    bodhi: InProcessApp, models: list[str], manager: httpx.AsyncClient
) -> None:
    owner = await bodhi.create_user(Role.USER)
    session = await bodhi.session_client(owner)
    names = [new_name("laptop"), new_name("ci")]
    tokens = []
    for name in names:
        created = await session.post(TOKENS, json={"name": name})
        assert created.status_code == 201, created.text
        tokens.append(created.json())
    other = await bodhi.account(Role.USER)
    async with FakeWorker(bodhi, text_answer("Hi")).running():
        await chat(bodhi, bodhi.client(token=tokens[0]["token"]), PRICED, 2)
        await chat(bodhi, bodhi.client(token=tokens[1]["token"]), PRICED, 1)
        await chat(bodhi, session, PRICED, 1)  # a session's requests have no token
        await chat(bodhi, other.client, PRICED, 1)

    mine = await usage(session, "token")
    assert set(mine) == {tokens[0]["id"], tokens[1]["id"], None}
    assert [(mine[t["id"]]["name"], mine[t["id"]]["requests"]) for t in tokens] == [(names[0], 2), (names[1], 1)]
    assert (mine[None]["name"], mine[None]["requests"]) == (None, 1)
    assert (await session.get(USAGE_URL, params={"group_by": "token"})).json()["scope"] == "own"
    everyone = await usage(manager, "token")
    assert {tokens[0]["id"], tokens[1]["id"]} < set(everyone)
    assert len(everyone) == 4  # the other user's token too

    refused = await session.get(USAGE_URL, params={"group_by": "colour"})
    error = assert_error(refused, 400, "invalid_request_error")
    assert error["param"] == "query.group_by"


async def test_the_token_and_user_lists_show_what_each_budget_spent_this_period(
    bodhi: InProcessApp, models: list[str], manager: httpx.AsyncClient
) -> None:
    owner = await bodhi.create_user(Role.USER)
    session = await bodhi.session_client(owner)
    budgeted = (await session.post(TOKENS, json={"name": "b", "budget_tokens": 1000, "budget_period": "month"})).json()
    plain = (await session.post(TOKENS, json={"name": "p"})).json()
    limited = await manager.put(
        f"/bodhi/v1/users/{owner.id}/limits", json={"budget_tokens": 5000, "budget_period": "day"}
    )
    assert limited.status_code == 200, limited.text
    assert (
        await manager.put(f"{PRICES}/{PRICED}", json={"input_per_million": 1, "output_per_million": 4})
    ).status_code == 200
    async with FakeWorker(bodhi, text_answer("Hi")).running():
        await chat(bodhi, bodhi.client(token=budgeted["token"]), PRICED, 2)
        await chat(bodhi, bodhi.client(token=budgeted["token"]), FREE_OF_PRICE, 1)
        await chat(bodhi, bodhi.client(token=plain["token"]), PRICED, 1)

    listed = {t["id"]: t for t in (await session.get(TOKENS)).json()["data"]}
    spent = listed[budgeted["id"]]["budget_spent"]
    assert spent["period"] == "month"
    assert spent["since"].endswith("-01T00:00:00+00:00")
    assert spent["tokens"] == 3 * TOTAL
    assert spent["cost"] == pytest.approx(cost_of(2, 1, 4))
    assert (spent["unpriced_requests"], spent["unpriced_tokens"]) == (1, TOTAL)
    assert listed[plain["id"]]["budget_spent"] is None  # no budget: nothing to spend

    users = {u["id"]: u for u in (await manager.get("/bodhi/v1/users")).json()["data"]}
    user_spent = users[str(owner.id)]["budget_spent"]
    assert (user_spent["period"], user_spent["tokens"]) == ("day", 4 * TOTAL)  # every token of theirs counts
    assert user_spent["cost"] == pytest.approx(cost_of(3, 1, 4))
    assert user_spent["since"].endswith("T00:00:00+00:00")
    assert all(u["budget_spent"] is None for i, u in users.items() if i != str(owner.id))
