"""Rate limits in the enqueue script on a real Redis (``bodhi_shared.rate_limits``): atomic across concurrent
enqueuers, nothing written by a refused request, GCRA refills, tokens charged after the fact."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, cast

import pytest
from arq import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bodhi_shared.queue import QueueFull, create_queue_pool, enqueue_if_capacity
from bodhi_shared.rate_limits import BUDGET, RPM, TPM, Charges, LimitCheck, LimitExceeded


async def charge(pool: ArqRedis, checks: list[LimitCheck], tokens: int) -> None:
    """What a finished request is charged, written at once (``Charges`` flushed by hand, not after its interval)."""
    charges = Charges(pool, lambda later: later.close())
    charges.add(checks, tokens)
    await charges.flush()


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


class CountingEvals:
    """A real Redis client that counts its script calls (round trips of ``Charges``)."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis, self.evals = redis, 0

    async def eval(self, *args: Any) -> Any:
        self.evals += 1
        return await self.redis.eval(*args)  # type: ignore[misc]  # sync|async union


async def test_charges_of_many_requests_are_summed_per_key_and_written_in_one_round_trip(pool_and_queue: Any) -> None:
    pool, queue = pool_and_queue
    one = LimitCheck(f"{queue}:budget:one", BUDGET, 10_000, "this API token", period_ms=60_000, period="day")
    user = LimitCheck(f"{queue}:budget:user", BUDGET, 10_000, "your account", period_ms=60_000, period="day")
    tpm = LimitCheck(f"{queue}:tpm", TPM, 6000, "this API token")
    rpm = LimitCheck(f"{queue}:rpm", RPM, 10, "this API token")
    spawned: list[asyncio.Task[Any]] = []
    counting = CountingEvals(pool)
    charges = Charges(cast(Redis, counting), lambda work: spawned.append(asyncio.create_task(work)))

    charges.add([rpm, one, user, tpm], 100)  # three requests finish within the interval
    charges.add([user], 20)
    charges.add([one, user], 5)
    assert len(spawned) == 1  # one flush for all of them
    await asyncio.gather(*spawned)

    assert counting.evals == 1
    assert (int(await pool.get(one.key)), int(await pool.get(user.key))) == (105, 125)
    assert await pool.get(rpm.key) is None  # requests per minute are counted at enqueue, not charged after
    assert 900 <= float(await pool.get(tpm.key)) - time.time() * 1000 <= 1001  # 100 tokens at 6000/min: 1 s on
    charges.add([one], 1)  # the next interval's
    assert len(spawned) == 2
    await spawned[1]  # before the pool closes
    assert int(await pool.get(one.key)) == 106


async def test_a_charge_redis_refused_is_kept_for_the_next_flush(pool_and_queue: Any) -> None:
    pool, queue = pool_and_queue
    budget = LimitCheck(f"{queue}:budget", BUDGET, 10_000, "this API token", period_ms=60_000, period="day")
    away = Redis.from_url("redis://127.0.0.1:1")  # nothing listens there: every call fails
    charges = Charges(away, lambda work: work.close())  # flushed by hand here
    charges.add([budget], 30)
    with pytest.raises(RedisError):
        await charges.flush()
    await away.aclose()
    charges._redis = pool  # Redis is back
    charges.add([budget], 12)
    await charges.flush()

    assert int(await pool.get(budget.key)) == 42
