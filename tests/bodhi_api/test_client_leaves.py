"""A client that gives up before its answer cancels the provider call, streamed or not.

A streamed client that leaves after its response started is tested in ``test_inference.py``
(``test_client_leaving_closes_the_upstream_connection``); here the client leaves while the API is still waiting:
for the whole answer (not streamed), or for the first token (a stream's response starts only with it, or after
``BODHI_SSE_KEEPALIVE_INTERVAL``).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from tests.conftest import Gateway, RegisterUpstream
from tests.support.fake_upstream import FakeUpstream, RecordedRequest, Script

MESSAGES = [{"role": "user", "content": "hi"}]
PROVIDER_LATENCY_S = 10.0
CLIENT_TIMEOUT_S = 1.0


async def recorded(fake_upstream: FakeUpstream, model: str) -> RecordedRequest:
    for _ in range(100):
        if requests := fake_upstream.requests_for(model):
            return requests[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no request for {model} reached the provider")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_gives_up_cancels_the_provider_call(
    gateway: Gateway,
    fake_upstream: FakeUpstream,
    register_upstream: RegisterUpstream,
    db: asyncpg.Connection,
    *,
    stream: bool,
) -> None:
    model = await register_upstream(Script(latency=PROVIDER_LATENCY_S))
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=gateway.auth_headers) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/v1/chat/completions", json=body, timeout=CLIENT_TIMEOUT_S)
    left_at = time.monotonic()
    record = await recorded(fake_upstream, model)
    for _ in range(100):  # up to 5 s
        if record.client_gone_at is not None:
            break
        await asyncio.sleep(0.05)

    assert record.client_gone_at is not None, "the provider call ran on after the client left"
    assert record.client_gone_at - left_at < 3
    assert record.finished_at is None
    # Counted as a cancelled request, once (usage is written every second).
    for _ in range(40):
        statuses = await db.fetch("SELECT status, http_status FROM usage_records WHERE model = $1", model)
        if statuses:
            break
        await asyncio.sleep(0.1)
    assert [(r["status"], r["http_status"]) for r in statuses] == [("cancelled", 499)]


async def test_a_client_that_waits_still_gets_its_answer(gateway: Gateway, register_upstream: RegisterUpstream) -> None:
    model = await register_upstream(Script(latency=1.5))
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=gateway.auth_headers, timeout=20) as http:
        answered = await http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})

    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"]
