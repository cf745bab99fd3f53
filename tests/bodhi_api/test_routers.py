"""Routers: one model id served by a list of targets, through real processes (API -> Redis -> remote worker) to the
fake provider. A failing target is left for the next one and cooled down on every replica (``model_routers``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import asyncpg
import httpx
import openai
import pytest

from tests.bodhi_api.test_auth import login
from tests.conftest import ADMIN_PASSWORD, Gateway, RegisterUpstream, StartGateway
from tests.support.backing import new_name
from tests.support.fake_upstream import FakeUpstream, Script

MESSAGES = [{"role": "user", "content": "hi"}]
ROUTERS = "/bodhi/v1/routers"


@pytest.fixture
async def manager(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client with an admin's browser session: routers are managed by managers and above (the run's token is
    scoped to power_user)."""
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        http.headers.update(await login(http, gateway.admin_username, ADMIN_PASSWORD))
        yield http


@pytest.fixture
def make_router(manager: httpx.AsyncClient) -> Any:
    async def make(targets: list[str], **fields: Any) -> str:
        model_id = new_name("team/router")
        created = await manager.post(ROUTERS, json={"model_id": model_id, "targets": targets, **fields})
        assert created.status_code == 201, created.text
        return model_id

    return make


async def chat(
    client: httpx.AsyncClient, model: str, *, stream: bool = False, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    return await client.post("/v1/chat/completions", json=body, headers=headers)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def streamed_text(body: str) -> str:
    text = ""
    for line in body.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[len("data: ") :]).get("choices", []):
                text += choice.get("delta", {}).get("content") or ""
    return text


@contextlib.asynccontextmanager
async def dropping_provider() -> AsyncIterator[str]:
    """A provider that reads each request and closes the connection without an answer; yields its base URL."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"


FAILURES = {
    "429 with Retry-After": Script(status=429, error_headers={"Retry-After": "30"}),
    "500": Script(status=500),
    "a stream cut before its first chunk": Script(disconnect_after=0),
}
SETUPS = [("a refused connection", False), ("a dropped connection", False), ("a dropped connection", True)]


@pytest.mark.parametrize(
    ("failure", "stream"),
    [(f, s) for f in FAILURES for s in (False, True) if s or not f.startswith("a stream")] + SETUPS,
)
async def test_a_fallback_router_serves_from_the_second_target_when_the_first_fails(
    client: httpx.AsyncClient,
    register_upstream: RegisterUpstream,
    make_router: Any,
    *,
    fake_upstream: FakeUpstream,
    failure: str,
    stream: bool,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if failure == "a refused connection":
            first = await register_upstream(Script(), base_url=f"http://127.0.0.1:{closed_port()}/v1")
        elif failure == "a dropped connection":
            first = await register_upstream(Script(), base_url=await stack.enter_async_context(dropping_provider()))
        else:
            first = await register_upstream(FAILURES[failure])
        second = await register_upstream(Script(chunks=2, text="ok"))
        router = await make_router([first, second])

        answer = await chat(client, router, stream=stream)

    assert answer.status_code == 200, answer.text
    assert answer.headers["x-bodhi-target"] == second
    text = streamed_text(answer.text) if stream else answer.json()["choices"][0]["message"]["content"]
    assert text == "ok0 ok1 "
    if failure in FAILURES:
        assert len(fake_upstream.requests_for(first)) == 1
    assert len(fake_upstream.requests_for(second)) == 1
    # the provider saw its own model name, not the router's
    assert fake_upstream.requests_for(second)[0].body["model"] == second


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_client_error_from_the_first_target_is_returned_not_retried(
    client: httpx.AsyncClient,
    register_upstream: RegisterUpstream,
    fake_upstream: FakeUpstream,
    make_router: Any,
    status: int,
) -> None:
    first = await register_upstream(Script(status=status))
    second = await register_upstream(Script())
    router = await make_router([first, second])

    answer = await chat(client, router)

    # 401 and 403 from a provider are the stored key's fault: 502 provider_authentication_failed, not retried
    assert answer.status_code == (502 if status == 401 else status), answer.text
    assert fake_upstream.requests_for(second) == []
    detail = await client.get(f"{ROUTERS}/{router}")
    assert detail.json()["cooling_down"] == {}


@pytest.fixture
async def replicas(gateway: Gateway, start_gateway: StartGateway) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two API processes sharing one Redis namespace of their own (one remote worker serves both)."""
    prefix = new_name("bodhitest-routers")
    one = start_gateway(BODHI_REDIS_PREFIX=prefix)
    two = start_gateway(worker=False, BODHI_REDIS_PREFIX=prefix)
    headers = {"Authorization": f"Bearer {gateway.admin_token}"}
    async with (
        httpx.AsyncClient(base_url=one.base_url, timeout=30, headers=headers) as a,
        httpx.AsyncClient(base_url=two.base_url, timeout=30, headers=headers) as b,
    ):
        yield a, b


async def test_during_the_cool_down_neither_replica_tries_the_first_target_again(
    replicas: tuple[httpx.AsyncClient, ...],
    client: httpx.AsyncClient,
    register_upstream: RegisterUpstream,
    make_router: Any,
    fake_upstream: FakeUpstream,
) -> None:
    first = await register_upstream(Script(status=429, error_headers={"Retry-After": "30"}))
    second = await register_upstream(Script())
    router = await make_router([first, second])

    answer = await chat(replicas[0], router)
    assert answer.status_code == 200, answer.text
    answers = await asyncio.gather(*(chat(replicas[i % 2], router) for i in range(6)))

    assert [a.status_code for a in answers] == [200] * 6
    assert {a.headers["x-bodhi-target"] for a in answers} == {second}
    assert len(fake_upstream.requests_for(first)) == 1  # only the request that failed there
    assert len(fake_upstream.requests_for(second)) == 7
    for replica in replicas:  # both see the cool-down, with the provider's Retry-After
        cooling = (await replica.get(f"{ROUTERS}/{router}")).json()["cooling_down"]
        assert list(cooling) == [first]
        assert 20 < cooling[first] <= 30


async def test_every_target_cooling_down_is_503_with_retry_after(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream, make_router: Any
) -> None:
    first = await register_upstream(Script(status=503, error_headers={"Retry-After": "20"}))
    second = await register_upstream(Script(status=500))
    router = await make_router([first, second], cooldown_s=40)

    failed = await chat(client, router)
    assert failed.status_code == 500  # the last target's error
    refused = await chat(client, router)

    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "router_cooling_down"
    assert router in error["message"]
    assert 15 <= int(refused.headers["retry-after"]) <= 20  # the soonest of the two cool-downs ends first
    assert len(fake_upstream.requests_for(first)) == len(fake_upstream.requests_for(second)) == 1


async def test_a_round_robin_router_takes_its_targets_in_turn(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, make_router: Any
) -> None:
    targets = [await register_upstream(Script()) for _ in range(3)]
    router = await make_router(targets, strategy="round_robin")

    served = [(await chat(client, router)).headers["x-bodhi-target"] for _ in range(6)]

    assert sorted(served) == sorted(targets * 2)
    assert served[:3] == served[3:]  # the same turn order


async def test_a_least_busy_router_sends_a_request_where_fewest_are_in_flight(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream, make_router: Any
) -> None:
    slow, other = await register_upstream(Script(latency=1.5)), await register_upstream(Script(latency=1.5))
    router = await make_router([slow, other], strategy="least_busy")

    first = asyncio.create_task(chat(client, router))
    await fake_upstream.has_seen(slow)  # in flight at the first target (the tie goes to the first listed)
    second = await chat(client, router)

    assert second.headers["x-bodhi-target"] == other
    assert (await first).headers["x-bodhi-target"] == slow
    third = await chat(client, router)  # both done: no longer counted anywhere, so the first listed again
    assert third.headers["x-bodhi-target"] == slow


async def test_the_callers_rate_limit_counts_a_routed_request_once_and_is_never_retried(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream, make_router: Any
) -> None:
    first = await register_upstream(Script(status=500))
    second, third = await register_upstream(Script()), await register_upstream(Script())
    router = await make_router([first, second, third], cooldown_s=0)
    created = await client.post("/bodhi/v1/tokens", json={"name": new_name("limited"), "rpm_limit": 1})
    auth = {"Authorization": f"Bearer {created.json()['token']}"}

    answer = await chat(client, router, headers=auth)
    assert answer.status_code == 200, answer.text  # two targets tried, one request counted
    refused = await chat(client, router, headers=auth)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(fake_upstream.requests_for(first)) == 1
    assert fake_upstream.requests_for(third) == []


async def test_a_router_id_is_unique_among_served_ids_and_its_targets_must_be_served(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, make_router: Any, manager: httpx.AsyncClient
) -> None:
    model = await register_upstream(Script())
    router = await make_router([model])

    taken = await manager.post(ROUTERS, json={"model_id": model, "targets": [model]})
    assert taken.status_code == 409
    assert f"`{model}` is already served by API model" in taken.json()["error"]["message"]
    again = await manager.post(ROUTERS, json={"model_id": router, "targets": [model]})
    assert again.status_code == 409
    assert f"already served by the router `{router}`" in again.json()["error"]["message"]
    clash = await client.post(
        "/bodhi/v1/models/api",
        json={"name": new_name("clash"), "base_url": "https://api.example.com/v1", "api_key": "k", "models": [router]},
    )
    assert clash.status_code == 409
    assert f"already served by the router `{router}`" in clash.json()["error"]["message"]
    for targets, param, says in (
        ([model, "nobody/serves-this"], "targets.1", "is not a served model id"),
        ([router], "targets.0", "is a router"),
        ([model, model], "targets", "listed twice"),
        ([], "targets", "at least 1"),
    ):
        refused = await manager.post(ROUTERS, json={"model_id": new_name("r"), "targets": targets})
        assert refused.status_code == 400, (targets, refused.text)
        error = refused.json()["error"]
        assert error["param"] == param, (targets, error)
        assert says in error["message"], (targets, error)
    strategy = await manager.post(ROUTERS, json={"model_id": new_name("r"), "targets": [model], "strategy": "random"})
    assert strategy.status_code == 400
    assert strategy.json()["error"]["param"] == "strategy"


async def test_a_router_is_listed_updated_and_deleted_and_changes_apply_at_once(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, make_router: Any, manager: httpx.AsyncClient
) -> None:
    one, two = await register_upstream(Script()), await register_upstream(Script())
    router = await make_router([one])
    assert (await chat(client, router)).headers["x-bodhi-target"] == one

    listed = (await client.get("/v1/models")).json()["data"]
    assert {"id": router, "object": "model", "created": 0, "owned_by": "bodhi"} in listed
    unified = (await client.get("/bodhi/v1/models")).json()["data"]
    assert next(e for e in unified if e["id"] == router)["source"] == "router"

    updated = await manager.put(f"{ROUTERS}/{router}", json={"targets": [two], "strategy": "round_robin"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["targets"] == [two]
    assert updated.json()["strategy"] == "round_robin"
    assert (await chat(client, router)).headers["x-bodhi-target"] == two

    assert (await manager.delete(f"{ROUTERS}/{router}")).status_code == 204
    gone = await chat(client, router)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "model_not_found"
    assert (await client.get(f"{ROUTERS}/{router}")).status_code == 404
    assert (await manager.put(f"{ROUTERS}/{router}", json={"targets": [two]})).status_code == 404


async def test_a_target_removed_after_the_router_was_saved_is_skipped(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, make_router: Any
) -> None:
    one, two = await register_upstream(Script()), await register_upstream(Script())
    router = await make_router([one, two])
    models = (await client.get("/bodhi/v1/models")).json()["data"]
    api_model_id = next(e["api_model_id"] for e in models if e["id"] == one)
    assert (await client.delete(f"/bodhi/v1/models/api/{api_model_id}")).status_code == 204

    assert (await chat(client, router)).headers["x-bodhi-target"] == two


async def test_the_other_api_formats_fall_back_too_and_usage_names_the_target(
    gateway: Gateway,
    register_upstream: RegisterUpstream,
    make_router: Any,
    fake_upstream: FakeUpstream,
    db: asyncpg.Connection,
) -> None:
    first = await register_upstream(Script(status=500))
    second = await register_upstream(Script(chunks=2, text="ok"))
    router = await make_router([first, second], cooldown_s=0)

    anthropic_sdk = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=gateway.admin_token, max_retries=0)
    openai_sdk = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=gateway.admin_token, max_retries=0)
    try:
        async with anthropic_sdk.messages.stream(
            model=router, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            message = await stream.get_final_message()
        response = await openai_sdk.responses.create(model=router, input="hi")
    finally:
        await anthropic_sdk.close()
        await openai_sdk.close()

    assert [block.text for block in message.content if block.type == "text"] == ["ok0 ok1 "]
    assert response.output_text == "ok0 ok1 "
    assert len(fake_upstream.requests_for(first)) == len(fake_upstream.requests_for(second)) == 2
    rows: list[asyncpg.Record] = []
    for _ in range(50):  # usage is written off the request path, within a second or so
        rows = await db.fetch("SELECT endpoint, target, status FROM usage_records WHERE model = $1", router)
        if len(rows) == 2:
            break
        await asyncio.sleep(0.2)
    assert sorted(tuple(r) for r in rows) == [("messages", second, "ok"), ("responses", second, "ok")]


async def test_usage_per_router_target_priced_at_the_target_that_answered(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, make_router: Any, manager: httpx.AsyncClient
) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    priced, free = await register_upstream(Script(usage=usage)), await register_upstream(Script(usage=usage))
    router = await make_router([priced, free], strategy="round_robin")
    price = {"input_per_million": 2, "output_per_million": 8}
    assert (await manager.put(f"/bodhi/v1/prices/{priced}", json=price)).status_code == 200
    refused = await manager.put(f"/bodhi/v1/prices/{router}", json=price)
    assert refused.status_code == 400
    assert "priced at the target" in refused.json()["error"]["message"]

    for _ in range(4):
        assert (await chat(client, router)).status_code == 200
    report = await client.get("/bodhi/v1/usage", params={"group_by": "target", "model": router})

    assert report.status_code == 200, report.text
    rows = {row["key"]: row for row in report.json()["data"]}
    assert set(rows) == {priced, free}
    assert rows[priced]["requests"] == rows[free]["requests"] == 2
    assert rows[priced]["cost"] == pytest.approx(2 * (1000 * 2 + 500 * 8) / 1_000_000)
    assert rows[free]["cost"] is None
    assert rows[free]["unpriced_requests"] == 2
