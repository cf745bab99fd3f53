"""The inference hot path as real clients see it: SDKs, pass-through, SSE, errors, cancellation, usage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio as aioredis
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.conftest import ADMIN_PASSWORD, Gateway, RegisterUpstream, StartGateway
from tests.support.fake_upstream import TOOL, FakeUpstream, Script, chunk_text
from tests.support.processes import create_user_and_token

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
TOOLS: list[ChatCompletionToolParam] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]


def data_payloads(body: str) -> list[str]:
    return [line[len("data: ") :] for line in body.split("\n") if line.startswith("data: ")]


async def test_openai_sdks_run_chat_streams_tools_and_embeddings(
    gateway: Gateway, register_upstream: RegisterUpstream
) -> None:
    script = Script(chunks=3)
    model = await register_upstream(script)
    expected = "".join(chunk_text(script, i) for i in range(3))

    def with_sync_sdk() -> None:
        sdk = openai.OpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token)
        with sdk:
            assert sdk.chat.completions.create(model=model, messages=MESSAGES).choices[0].message.content == expected
            streamed = sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected
            called = sdk.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS)
            call = called.choices[0].message.tool_calls[0]  # type: ignore[index]
            assert (call.function.name, call.function.arguments) == (TOOL["name"], TOOL["arguments"])  # type: ignore[union-attr]
            vectors = sdk.embeddings.create(model=model, input=["a", "b"]).data
            assert [v.embedding for v in vectors] == [[0.5, -0.25, 0.0], [0.5, -0.25, 1.0]]

    await asyncio.to_thread(with_sync_sdk)
    sdk = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token)
    try:
        stream = await sdk.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, stream=True)
        arguments, name, finish = "", None, None
        async for chunk in stream:
            for delta_call in chunk.choices[0].delta.tool_calls or []:
                name = name or (delta_call.function.name if delta_call.function else None)
                arguments += (delta_call.function.arguments or "") if delta_call.function else ""
            finish = chunk.choices[0].finish_reason or finish
        embedded = await sdk.embeddings.create(model=model, input="one")
    finally:
        await sdk.close()
    assert (name, arguments, finish) == (TOOL["name"], TOOL["arguments"], "tool_calls")
    assert embedded.data[0].embedding == [0.5, -0.25, 0.0]


@pytest.mark.parametrize("client_asks_usage", [False, True])
async def test_stream_reaches_the_client_byte_for_byte(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream, client_asks_usage: bool
) -> None:
    model = await register_upstream(Script(chunks=4))
    body: dict[str, object] = {
        "model": model,
        "messages": MESSAGES,
        "stream": True,
        "seed": 7,
        "n": 1,
        "response_format": {"type": "text"},
        "x_vendor_field": [1, 2],
    }
    if client_asks_usage:
        body["stream_options"] = {"include_usage": True}
    response = await client.post("/v1/chat/completions", json=body)

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    received = data_payloads(response.text)
    assert received[-1] == "[DONE]"
    record = fake_upstream.requests_for(model)[-1]
    sent = [p.decode() for p in record.sent]
    # Every field arrived unchanged; usage was asked for upstream either way.
    assert {k: v for k, v in record.body.items() if k != "stream_options"} == {
        k: v for k, v in body.items() if k != "stream_options"
    }
    assert record.body["stream_options"] == {"include_usage": True}
    expected = sent if client_asks_usage else [p for p in sent if '"usage"' not in p]
    assert received[:-1] == expected


async def test_client_leaving_closes_the_upstream_connection(
    gateway: Gateway, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=100, delay=0.2))
    body = {"model": model, "messages": MESSAGES, "stream": True}
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, headers=gateway.auth_headers, timeout=20) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break
    left_at = time.monotonic()
    record = fake_upstream.requests_for(model)[-1]
    for _ in range(100):  # up to 5 s
        if record.client_gone_at is not None:
            break
        await asyncio.sleep(0.05)

    assert record.client_gone_at is not None, "the upstream stream was never closed"
    assert record.client_gone_at - left_at < 2
    assert record.finished_at is None


# 401/403 become 502 provider_authentication_failed: tests/bodhi_api/test_provider_errors.py
@pytest.mark.parametrize("status", [400, 404, 422, 429, 500])
async def test_upstream_errors_keep_their_status(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, status: int
) -> None:
    error = {"error": {"message": f"upstream says {status}", "type": "x", "param": None, "code": str(status)}}
    model = await register_upstream(Script(status=status, error_body=error))
    for stream in (False, True):
        response = await client.post(
            "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": stream}
        )
        assert response.status_code == status
        assert response.json() == error
        assert response.headers["x-request-id"]


async def test_upstream_dropping_mid_stream_gives_an_in_band_error(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=5, disconnect_after=2))
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})

    assert response.status_code == 200
    payloads = data_payloads(response.text)
    assert len(payloads) == 4
    assert [json.loads(p)["object"] for p in payloads[:2]] == ["chat.completion.chunk"] * 2
    assert json.loads(payloads[2])["error"]["code"] == "upstream_error"
    assert payloads[3] == "[DONE]"


async def test_worker_killed_mid_stream_ends_the_stream_with_an_error(
    start_gateway: StartGateway, register_upstream: RegisterUpstream
) -> None:
    own = await asyncio.to_thread(start_gateway, BODHI_HEARTBEAT_TTL="2")
    model = await register_upstream(Script(chunks=200, delay=0.1))
    assert own.worker is not None
    lines: list[str] = []
    async with (
        httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http,
        http.stream(
            "POST", "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True}
        ) as response,
    ):
        killed_at = None
        async for line in response.aiter_lines():
            lines.append(line)
            if killed_at is None and line.startswith("data: "):
                os.kill(own.worker.popen.pid, signal.SIGKILL)
                killed_at = time.monotonic()
        ended_at = time.monotonic()

    assert killed_at is not None
    assert ended_at - killed_at < 8
    payloads = data_payloads("\n".join(lines))
    assert json.loads(payloads[-2])["error"]["code"] == "worker_lost"
    assert payloads[-1] == "[DONE]"


async def test_keep_alive_comments_flow_while_waiting(
    start_gateway: StartGateway, register_upstream: RegisterUpstream
) -> None:
    own = await asyncio.to_thread(start_gateway, BODHI_SSE_KEEPALIVE_INTERVAL="0.3")
    model = await register_upstream(Script(chunks=2, delay=1.5))
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        response = await http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})

    assert ": keep-alive" in response.text.split("\n")
    assert len(data_payloads(response.text)) == 3


async def test_queue_over_its_limit_is_429(start_gateway: StartGateway, register_upstream: RegisterUpstream) -> None:
    own = await asyncio.to_thread(start_gateway, worker=False, BODHI_QUEUE_DEPTH_LIMIT="1")
    model = await register_upstream()
    queue = f"{own.env['BODHI_REDIS_PREFIX']}:queue:remote"
    redis = aioredis.Redis.from_url(own.env["BODHI_REDIS_URL"])
    try:
        await redis.zadd(queue, {"someone-elses-job": time.time() * 1000})
        async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
            response = await http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
    finally:
        await redis.delete(queue)
        await redis.aclose()

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "rate_limit_error"


async def test_a_job_no_worker_takes_is_withdrawn_with_503(
    start_gateway: StartGateway, register_upstream: RegisterUpstream
) -> None:
    own = await asyncio.to_thread(start_gateway, worker=False, BODHI_PICKUP_TIMEOUT="1")
    model = await register_upstream()
    prefix = own.env["BODHI_REDIS_PREFIX"]
    redis = aioredis.Redis.from_url(own.env["BODHI_REDIS_URL"])
    try:
        # A worker that heartbeats but never polls: the request is accepted, then nobody takes it.
        await redis.zadd(f"{prefix}:workers:remote", {"stuck-worker": time.time() + 60})
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
            response = await http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
        elapsed = time.monotonic() - started
        left_in_queue = await redis.zcard(f"{prefix}:queue:remote")
    finally:
        await redis.delete(f"{prefix}:workers:remote")
        await redis.aclose()

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_worker_available"
    assert model in response.json()["error"]["message"]
    assert 1 <= elapsed < 4
    assert left_in_queue == 0


async def upstream_has_seen(fake_upstream: FakeUpstream, model: str, count: int = 1) -> None:
    """Wait until the fake upstream has received ``count`` requests for ``model`` (a worker is running them)."""
    await fake_upstream.has_seen(model, count)


async def one_job_gateway(start_gateway: StartGateway, **settings: str) -> Gateway:
    """A gateway whose remote worker runs one job at a time (as a local worker does), with a 1 s pickup timeout."""
    return await asyncio.to_thread(start_gateway, BODHI_PICKUP_TIMEOUT="1", BODHI_MAX_JOBS="1", **settings)


@contextlib.asynccontextmanager
async def behind_a_running_request(
    own: Gateway, fake_upstream: FakeUpstream, model: str
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """A client whose first streamed request for ``model`` runs on ``own``'s one-job worker; yields the client and
    the body of another request, which queues behind it. The first must end well."""
    body = {"model": model, "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=60) as http:
        first = asyncio.create_task(http.post("/v1/chat/completions", json=body))
        await upstream_has_seen(fake_upstream, model)  # the first is running
        yield http, body
        assert (await first).status_code == 200


async def test_requests_queued_behind_a_busy_worker_wait_past_the_pickup_timeout(
    start_gateway: StartGateway, register_upstream: RegisterUpstream
) -> None:
    # One job at a time (as a local worker runs them), each answer ~2.4 s, a pickup timeout of 1 s: the requests
    # behind the first wait for their turn (the queue keeps moving), none gets 503.
    own = await one_job_gateway(start_gateway)
    model = await register_upstream(Script(chunks=7, delay=0.4))
    body = {"model": model, "messages": MESSAGES, "stream": True}
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=60) as http:
        responses = await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(3)))
    elapsed = time.monotonic() - started

    assert [response.status_code for response in responses] == [200, 200, 200], [r.text for r in responses]
    assert elapsed >= 3 * 6 * 0.4  # they really ran one after the other


async def test_a_request_waits_behind_busy_workers_at_most_the_queue_timeout(
    start_gateway: StartGateway, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    own = await one_job_gateway(start_gateway, BODHI_QUEUE_TIMEOUT="2")
    model = await register_upstream(Script(chunks=11, delay=0.5))  # ~5 s
    async with behind_a_running_request(own, fake_upstream, model) as (http, body):
        started = time.monotonic()
        queued = await http.post("/v1/chat/completions", json=body | {"stream": False})
        elapsed = time.monotonic() - started

    assert queued.status_code == 503, queued.text
    error = queued.json()["error"]
    assert error["code"] == "no_worker_available"
    assert "waited 2 s behind other requests" in error["message"]
    assert 2 <= elapsed < 4


async def test_a_stream_queued_behind_a_busy_worker_starts_with_keep_alives(
    start_gateway: StartGateway, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    own = await one_job_gateway(start_gateway, BODHI_SSE_KEEPALIVE_INTERVAL="0.3")
    model = await register_upstream(Script(chunks=6, delay=0.4))  # ~2 s each
    async with (
        behind_a_running_request(own, fake_upstream, model) as (http, body),
        http.stream("POST", "/v1/chat/completions", json=body) as queued,
    ):
        lines = [line async for line in queued.aiter_lines() if line]

    assert queued.status_code == 200
    assert queued.headers["content-type"].startswith("text/event-stream")
    assert lines[0] == ": keep-alive"  # sent while it waited for the worker
    data = [line for line in lines if line.startswith("data: ")]
    assert len(data) == 6 + 1
    assert data[-1] == "data: [DONE]"


async def test_a_queued_stream_that_waits_too_long_ends_with_an_in_band_error(
    start_gateway: StartGateway, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    own = await one_job_gateway(start_gateway, BODHI_QUEUE_TIMEOUT="2", BODHI_SSE_KEEPALIVE_INTERVAL="0.3")
    model = await register_upstream(Script(chunks=11, delay=0.5))  # ~5 s
    async with (
        behind_a_running_request(own, fake_upstream, model) as (http, body),
        http.stream("POST", "/v1/chat/completions", json=body) as queued,
    ):
        lines = [line async for line in queued.aiter_lines() if line]

    assert queued.status_code == 200
    data = [line for line in lines if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]"
    error = json.loads(data[-2][len("data: ") :])["error"]
    assert error["code"] == "no_worker_available"
    assert "waited 2 s behind other requests" in error["message"]


async def test_a_client_that_leaves_while_queued_withdraws_its_job(
    start_gateway: StartGateway, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    own = await one_job_gateway(start_gateway, BODHI_SSE_KEEPALIVE_INTERVAL="0.3")
    model = await register_upstream(Script(chunks=6, delay=0.4))  # ~2 s
    async with (
        behind_a_running_request(own, fake_upstream, model) as (http, body),
        http.stream("POST", "/v1/chat/completions", json=body) as queued,
    ):
        async for line in queued.aiter_lines():
            assert line == ": keep-alive"
            break  # the client leaves while its request still waits
    # The worker runs one job at a time, oldest first: once a request sent after the withdrawn one is served, the
    # withdrawn one would have run before it, had it stayed in the queue.
    sentinel = await register_upstream(Script(chunks=1))
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        after = await http.post("/v1/chat/completions", json={"model": sentinel, "messages": MESSAGES})
    assert after.status_code == 200

    assert len(fake_upstream.requests_for(model)) == 1
    redis = aioredis.Redis.from_url(own.env["BODHI_REDIS_URL"])
    try:
        assert await redis.zcard(f"{own.env['BODHI_REDIS_PREFIX']}:queue:remote") == 0
    finally:
        await redis.aclose()


async def test_usage_is_recorded_with_the_providers_numbers(
    gateway: Gateway, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=4))
    token = await asyncio.to_thread(
        create_user_and_token,
        gateway.env,
        username=f"counted-{uuid.uuid4().hex[:6]}",
        password="counted-password",
        role="user",
        scope="user",
    )
    async with httpx.AsyncClient(
        base_url=gateway.base_url, timeout=20, headers={"Authorization": f"Bearer {token}"}
    ) as user:
        assert (
            await user.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})
        ).status_code == 200
        assert (await user.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})).status_code == 200
        assert (await user.post("/v1/embeddings", json={"model": model, "input": ["a", "b", "c"]})).status_code == 200
        mine = (await user.get("/bodhi/v1/usage", params={"group_by": "model"})).json()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as admin:
        login = {"username": gateway.admin_username, "password": ADMIN_PASSWORD}
        assert (await admin.post("/bodhi/v1/auth/login", json=login)).status_code == 200
        everyone = (await admin.get("/bodhi/v1/usage", params={"group_by": "user"})).json()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20, headers=gateway.auth_headers) as scoped:
        scoped_view = (await scoped.get("/bodhi/v1/usage")).json()

    assert mine["scope"] == "own"
    [row] = mine["data"]
    # Stream and plain: 5 prompt + 4 completion each; embeddings: 6 prompt, 0 completion.
    assert row["key"] == model
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (3, 16, 8, 24)
    assert row["failed"] == 0
    assert row["avg_ttft_ms"] > 0
    assert everyone["scope"] == "all"  # an admin's session sees everyone's usage
    assert any(r["key"] is not None for r in everyone["data"])
    assert scoped_view["scope"] == "own"  # the admin's token has scope power_user: not a manager
