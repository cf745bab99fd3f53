"""Rate limits and budgets hold across API replicas: two ``bodhi api`` processes on one Redis namespace share
each token's limits (``bodhi_shared.rate_limits``), and tokens per minute and budgets count the tokens the
provider reported."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, RegisterUpstream, StartGateway
from tests.support.backing import new_name
from tests.support.fake_upstream import Script

USAGE = {"prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100}


@pytest.fixture
async def replicas(gateway: Gateway, start_gateway: StartGateway) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two API processes sharing one Redis namespace of their own (one remote worker serves both)."""
    prefix = new_name("bodhitest-limits")
    one = start_gateway(BODHI_REDIS_PREFIX=prefix)
    two = start_gateway(worker=False, BODHI_REDIS_PREFIX=prefix)
    async with (
        httpx.AsyncClient(base_url=one.base_url, timeout=30) as a,
        httpx.AsyncClient(base_url=two.base_url, timeout=30) as b,
    ):
        yield a, b


async def token_with(client: httpx.AsyncClient, **limits: Any) -> str:
    created = await client.post("/bodhi/v1/tokens", json={"name": new_name("limited"), **limits})
    assert created.status_code == 201, created.text
    token: str = created.json()["token"]
    return token


async def chat(client: httpx.AsyncClient, token: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"})


async def refused_within(replicas: tuple[httpx.AsyncClient, ...], token: str, model: str, s: float) -> httpx.Response:
    """Alternate between the replicas until one refuses (the charge of the last answer lands off its path)."""
    deadline = time.monotonic() + s
    i = 0
    while True:
        answer = await chat(replicas[i % 2], token, model)
        if answer.status_code == 429:
            return answer
        assert answer.status_code == 200, answer.text
        assert time.monotonic() < deadline, "never refused"
        i += 1
        await asyncio.sleep(0.1)


async def test_an_rpm_limit_of_n_lets_n_through_across_two_replicas_not_2n(
    replicas: tuple[httpx.AsyncClient, ...], client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=1))
    token = await token_with(client, rpm_limit=4)
    answers = await asyncio.gather(*(chat(replicas[i % 2], token, model) for i in range(12)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 4 + [429] * 8, [a.text for a in answers if a.status_code not in (200, 429)]
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "4 requests per minute (RPM)" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-limit-requests"] == "4"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(refused.headers["retry-after"]) >= 1


async def test_tpm_counts_the_tokens_the_provider_reported_across_replicas(
    replicas: tuple[httpx.AsyncClient, ...], client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=1, usage=USAGE))
    token = await token_with(client, tpm_limit=150)  # two answers of 100 (the second starts with 50 left)

    first = await chat(replicas[0], token, model)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-remaining-tokens"] == "150"
    refused = await refused_within(replicas, token, model, 10)

    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "150 tokens per minute (TPM)" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-limit-tokens"] == "150"


async def test_a_budget_stops_requests_once_spent_on_every_replica(
    replicas: tuple[httpx.AsyncClient, ...], client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=1, usage=USAGE))
    token = await token_with(client, budget_tokens=150, budget_period="month")

    refused = await refused_within(replicas, token, model, 10)
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert "150 tokens per month" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) > 0
    for replica in replicas:  # spent for both
        again = await chat(replica, token, model)
        assert again.status_code == 429
        assert again.json()["error"]["code"] == "budget_exceeded"
