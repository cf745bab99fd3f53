"""Rate limits in the enqueue script on a real Redis (``bodhi_shared.rate_limits``): atomic across concurrent
enqueuers, nothing written by a refused request, GCRA refills, tokens charged after the fact."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from arq import ArqRedis

from bodhi_shared.queue import QueueFull, create_queue_pool, enqueue_if_capacity
from bodhi_shared.rate_limits import BUDGET, RPM, TPM, LimitCheck, LimitExceeded, charge


async def enqueue(pool: ArqRedis, queue: str, limits: list[LimitCheck], *, depth_limit: int = 1000) -> Any:
    return await enqueue_if_capacity(
        pool,
        queue=queue,
        wake_channel=f"{queue}:wake",
        live_workers=f"{queue}:workers",
        heartbeat_ttl=3,
        depth_limit=depth_limit,
        function="job",
        payload={},
        job_id=uuid.uuid4().hex,
        expires_s=60,
        limits=limits,
    )


@pytest.fixture
async def pool_and_queue(redis_url: str, redis_prefix: str) -> Any:
    pool = await create_queue_pool(redis_url)
    queue = f"{redis_prefix}:queue:limits-{uuid.uuid4().hex[:8]}"
    await pool.zadd(f"{queue}:workers", {"w": time.time() + 60})
    yield pool, queue
    await pool.aclose()


async def test_concurrent_enqueuers_admit_exactly_the_rpm(pool_and_queue: Any) -> None:
    pool, queue = pool_and_queue
    rpm = LimitCheck(f"{queue}:rpm", RPM, 5, "this API token")
    results = await asyncio.gather(*(enqueue(pool, queue, [rpm]) for _ in range(20)), return_exceptions=True)
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert (len(admitted), len(refused)) == (5, 15)
    assert sorted(r[0].remaining for r in admitted) == [0, 1, 2, 3, 4]
    assert await pool.zcard(queue) == 5  # only the admitted ones were queued
    assert 0 < refused[0].retry_after_ms <= 12_000  # one request's slot: 60 s / 5


async def test_a_refused_request_writes_nothing_and_a_full_queue_charges_no_request(pool_and_queue: Any) -> None:
    pool, queue = pool_and_queue
    rpm = LimitCheck(f"{queue}:rpm", RPM, 2, "this API token")
    budget = LimitCheck(f"{queue}:budget", BUDGET, 10, "your account", period_ms=5000, period="day")
    await pool.set(budget.key, 10)
    with pytest.raises(LimitExceeded) as spent:
        await enqueue(pool, queue, [rpm, budget])
    assert spent.value.check is budget
    assert spent.value.retry_after_ms == 5000
    assert await pool.get(rpm.key) is None  # the rpm check before it was not charged
    await pool.delete(budget.key)
    with pytest.raises(QueueFull):
        await enqueue(pool, queue, [rpm], depth_limit=0)
    assert await pool.get(rpm.key) is None


async def test_tokens_are_charged_after_and_checked_before(pool_and_queue: Any) -> None:
    pool, queue = pool_and_queue
    tpm = LimitCheck(f"{queue}:tpm", TPM, 100, "this API token")
    budget = LimitCheck(f"{queue}:budget", BUDGET, 1000, "this API token", period_ms=60_000, period="month")
    (state, budget_state) = await enqueue(pool, queue, [tpm, budget])
    assert (state.remaining, budget_state.remaining) == (100, 1000)
    await charge(pool, [tpm, budget], 99)
    (state, budget_state) = await enqueue(pool, queue, [tpm, budget])  # one token left: admitted
    assert (state.remaining, budget_state.remaining) == (1, 901)
    await charge(pool, [tpm, budget], 50)
    with pytest.raises(LimitExceeded) as over:
        await enqueue(pool, queue, [tpm, budget])
    assert over.value.check is tpm
    assert 29_000 <= over.value.retry_after_ms <= 31_000  # 49 tokens over, plus one to spend: 30 s at 100/min
    assert int(await pool.get(budget.key)) == 149
    assert 0 < await pool.pttl(budget.key) <= 120_000
