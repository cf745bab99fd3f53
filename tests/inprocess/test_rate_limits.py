"""Rate limits and budgets in-process (``auth.limits``, ``bodhi_shared.rate_limits``): requests and tokens per
minute and token budgets of tokens and users, checked in the enqueue script, charged when a request ends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bodhi_api.auth.limits import duration
from bodhi_api.auth.roles import Role
from bodhi_shared.rate_limits import period_bounds
from tests.inprocess.fake_worker import USAGE, FakeWorker, text_answer
from tests.inprocess.harness import Account, InProcessApp, assert_error
from tests.support.backing import new_name

TOKENS = "/bodhi/v1/tokens"
MODEL = "gpt-4o-mini"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
USED = USAGE["total_tokens"]  # what each fake answer reports: 10 tokens


@pytest.fixture
async def model(power_user: Account) -> str:
    await power_user.add_api_model([MODEL])
    return MODEL


async def token_with(owner: httpx.AsyncClient, **limits: Any) -> dict[str, Any]:
    created = await owner.post(TOKENS, json={"name": new_name("t"), **limits})
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    return answer


async def chats(bodhi: InProcessApp, client: httpx.AsyncClient, n: int, **extra: Any) -> list[httpx.Response]:
    """``n`` chats, one after another, each charged before the next (the charge runs off the request path)."""
    answers = []
    for _ in range(n):
        answers.append(await client.post("/v1/chat/completions", json=CHAT | extra))
        await bodhi.resources.drain()
    return answers


def test_durations_are_written_as_openai_writes_them() -> None:
    assert [duration(ms) for ms in (0, 250, 1000, 1500, 59_999, 90_000)] == [
        "0ms",
        "250ms",
        "1s",
        "1.5s",
        "59.999s",
        "1m30s",
    ]
    assert period_bounds("day", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        "2026-12-31",
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("month", datetime(2026, 12, 31, tzinfo=UTC)) == ("2026-12", datetime(2027, 1, 1, tzinfo=UTC))
    assert period_bounds("month", datetime(2026, 2, 3, tzinfo=UTC)) == ("2026-02", datetime(2026, 3, 1, tzinfo=UTC))


async def test_a_tokens_rpm_lets_through_that_many_then_429_with_the_headers(bodhi: InProcessApp, model: str) -> None:
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    created = await token_with(owner, rpm_limit=3)
    assert created["rpm_limit"] == 3
    limited = bodhi.client(token=created["token"])
    other = bodhi.client(token=(await token_with(owner))["token"])

    async with FakeWorker(bodhi, text_answer("Hi")).running() as worker:
        answers = await chats(bodhi, limited, 4)
        assert (await other.post("/v1/chat/completions", json=CHAT)).status_code == 200  # its own limit: none

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    refused = answers[3]
    error = assert_error(refused, 429, "rate_limit_error", "rate_limit_exceeded")
    assert "this API token" in error["message"]
    assert "3 requests per minute (RPM)" in error["message"]
    assert "Retry in" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # the next request's slot: 20 s after the first
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    assert int(refused.headers["retry-after-ms"]) > 0
    assert len(worker.jobs) == 4  # three of the limited token's, one of the other's: the refused one never queued

    listed = (await owner.get(TOKENS)).json()["data"]
    assert {t["id"]: t["rpm_limit"] for t in listed}[created["id"]] == 3


async def test_tpm_counts_the_tokens_actually_used(bodhi: InProcessApp, model: str) -> None:
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    limited = bodhi.client(token=(await token_with(owner, tpm_limit=2 * USED + 5))["token"])  # room for 2.5 answers

    async with FakeWorker(bodhi, text_answer("Hi")).running():
        answers = await chats(bodhi, limited, 4)
        streamed = await limited.post("/v1/chat/completions", json=CHAT | {"stream": True})

    # Checked before dispatch, charged after: the third still fits (5 tokens left), its 10 put it over.
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[1].headers["x-ratelimit-remaining-tokens"]) == USED + 5
    error = assert_error(answers[3], 429, "rate_limit_error", "rate_limit_exceeded")
    assert "tokens per minute (TPM)" in error["message"]
    assert "this API token" in error["message"]
    assert answers[3].headers["x-ratelimit-limit-tokens"] == str(2 * USED + 5)
    assert answers[3].headers["x-ratelimit-remaining-tokens"] == "0"
    assert streamed.status_code == 429


async def test_a_users_limits_cover_every_token_and_the_session(bodhi: InProcessApp, model: str) -> None:
    manager = await bodhi.session_client(await bodhi.create_user(Role.MANAGER))
    user = await bodhi.create_user(Role.USER)
    session = await bodhi.session_client(user)
    first = bodhi.client(token=(await token_with(session))["token"])
    second = bodhi.client(token=(await token_with(session))["token"])
    changed = await manager.put(f"/bodhi/v1/users/{user.id}/limits", json={"rpm_limit": 2})
    assert changed.status_code == 200, changed.text
    assert changed.json()["rpm_limit"] == 2
    assert changed.json()["tpm_limit"] is None

    async with FakeWorker(bodhi, text_answer("Hi")).running():
        one = await chats(bodhi, first, 1)
        two = await chats(bodhi, second, 1)
        three = await chats(bodhi, session, 1)

    assert [r[0].status_code for r in (one, two, three)] == [200, 200, 429]
    error = assert_error(three[0], 429, "rate_limit_error", "rate_limit_exceeded")
    assert "your account" in error["message"]
    users = (await manager.get("/bodhi/v1/users")).json()["data"]
    assert {u["id"]: u["rpm_limit"] for u in users}[str(user.id)] == 2


async def test_a_budget_stops_requests_once_spent_until_the_period_ends(bodhi: InProcessApp, model: str) -> None:
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    created = await token_with(owner, budget_tokens=USED + 1, budget_period="day")
    limited = bodhi.client(token=created["token"])

    async with FakeWorker(bodhi, text_answer("Hi")).running():
        answers = await chats(bodhi, limited, 3)

    assert [a.status_code for a in answers] == [200, 200, 429]
    error = assert_error(answers[2], 429, "rate_limit_error", "budget_exceeded")
    assert "this API token" in error["message"]
    assert "per day" in error["message"]
    _, end = period_bounds("day", datetime.now(UTC))
    left = (end - datetime.now(UTC)).total_seconds()
    assert left - 5 <= int(answers[2].headers["retry-after"]) <= left + 5
    budget_keys = [k for k in await bodhi.redis_keys() if ":budget:" in k]
    assert len(budget_keys) == 1
    ttl = await bodhi.resources.redis.pttl(budget_keys[0])
    assert 0 < ttl <= (left + 120) * 1000  # the key goes with its period


async def test_no_limit_costs_no_key(bodhi: InProcessApp, user: Account, model: str) -> None:
    async with FakeWorker(bodhi, text_answer("Hi")).running():
        answers = await chats(bodhi, user.client, 2)
    assert [a.status_code for a in answers] == [200, 200]
    assert "x-ratelimit-limit-requests" not in answers[0].headers
    assert not [k for k in await bodhi.redis_keys() if ":limit:" in k or ":budget:" in k]


async def test_limits_are_set_and_checked_on_create_and_patch(bodhi: InProcessApp) -> None:
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    for body in (
        {"rpm_limit": 0},
        {"tpm_limit": -1},
        {"budget_tokens": 5},
        {"budget_period": "week", "budget_tokens": 5},
    ):
        refused = await owner.post(TOKENS, json={"name": "x", **body})
        assert refused.status_code == 400, (body, refused.text)
    created = await token_with(owner, rpm_limit=5, budget_tokens=100, budget_period="month")
    path = f"{TOKENS}/{created['id']}"
    patched = await owner.patch(path, json={"tpm_limit": 1000})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["rpm_limit"], patched.json()["tpm_limit"], patched.json()["budget_tokens"]) == (5, 1000, 100)
    assert (await owner.patch(path, json={"budget_tokens": 7})).status_code == 400  # the period goes with it
    cleared = await owner.patch(path, json={"rpm_limit": None, "budget_tokens": None, "budget_period": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["rpm_limit"] is None
    assert cleared.json()["budget_period"] is None
    assert cleared.json()["tpm_limit"] == 1000


async def test_a_change_of_limits_applies_at_once(bodhi: InProcessApp, model: str) -> None:
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    created = await token_with(owner)
    client = bodhi.client(token=created["token"])
    async with FakeWorker(bodhi, text_answer("Hi")).running():
        assert (await chats(bodhi, client, 1))[0].status_code == 200  # verified and cached
        assert (await owner.patch(f"{TOKENS}/{created['id']}", json={"rpm_limit": 1})).status_code == 200
        answers = await chats(bodhi, client, 2)
    assert [a.status_code for a in answers] == [200, 429]


async def test_only_managers_set_a_users_limits(bodhi: InProcessApp, power_user: Account) -> None:
    target = await bodhi.create_user(Role.USER)
    refused = await power_user.client.put(f"/bodhi/v1/users/{target.id}/limits", json={"rpm_limit": 1})
    assert_error(refused, 403, "permission_error")
