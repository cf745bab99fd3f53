"""A claim names its worker; a job whose worker died goes back on its queue, under its id, and runs again."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import ArqRedis
from arq.constants import in_progress_key_prefix, retry_key_prefix
from arq.worker import func

from bodhi_shared.queue import (
    CLAIM_TTL_MS,
    NoLiveWorker,
    WakeableWorker,
    claimed_by,
    create_queue_pool,
    enqueue_if_capacity,
    requeue_job,
)


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_queue_pool(redis_url)
    yield redis
    await redis.aclose()


@contextlib.asynccontextmanager
async def running(worker: WakeableWorker) -> AsyncIterator[None]:
    main = asyncio.ensure_future(worker.async_run())
    try:
        yield
    finally:
        main.cancel()
        for task in worker.tasks.values():
            task.cancel()
        await asyncio.gather(main, *worker.tasks.values(), return_exceptions=True)


async def test_a_requeued_job_runs_again_under_its_id(pool: ArqRedis, redis_prefix: str) -> None:
    queue = f"{redis_prefix}:queue:requeue-{uuid.uuid4().hex[:8]}"
    live = f"{queue}:workers"
    runs: list[tuple[str, dict[str, Any]]] = []
    ran = asyncio.Event()

    async def job(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        runs.append((ctx["worker"], payload))
        ran.set()
        await asyncio.Event().wait()  # the first worker "dies" with its job running

    def worker(worker_id: str) -> WakeableWorker:
        return WakeableWorker(
            functions=[func(job, name="job", max_tries=1)],
            queue_name=queue,
            wake_channel=f"{queue}:wake",
            worker_id=worker_id,
            redis_pool=pool,
            max_jobs=1,
            poll_delay=0.05,
            keep_result=0,
            handle_signals=False,
            ctx={"worker": worker_id},
        )

    async def requeue() -> None:
        await requeue_job(
            pool,
            queue=queue,
            wake_channel=f"{queue}:wake",
            live_workers=live,
            heartbeat_ttl=3,
            function="job",
            payload={"n": 1},
            job_id="job-1",
            expires_s=60,
        )

    await pool.zadd(live, {"first": time.time()})
    try:
        async with running(worker("first")):
            await enqueue_if_capacity(
                pool,
                queue=queue,
                wake_channel=f"{queue}:wake",
                live_workers=live,
                heartbeat_ttl=3,
                depth_limit=10,
                function="job",
                payload={"n": 1},
                job_id="job-1",
                expires_s=60,
            )
            await asyncio.wait_for(ran.wait(), 5)
        assert await claimed_by(pool, queue, "job-1") == "first"
        assert 0 < await pool.pttl(f"{queue}:claim:job-1") <= CLAIM_TTL_MS
        # As a worker killed before it started the job would leave them: arq's marks of a claim and of one try.
        await pool.set(in_progress_key_prefix + "job-1", b"1", px=60_000)
        await pool.set(retry_key_prefix + "job-1", b"1", px=60_000)

        await pool.zadd(live, {"first": time.time() - 60})  # the first worker is dead: nobody can take it
        with pytest.raises(NoLiveWorker):
            await requeue()
        assert await pool.zcard(queue) == 0  # nothing written

        ran.clear()
        await pool.zadd(live, {"second": time.time()})
        async with running(worker("second")):
            await requeue()
            await asyncio.wait_for(ran.wait(), 5)
        assert await claimed_by(pool, queue, "job-1") == "second"
    finally:
        keys = [key async for key in pool.scan_iter(match=f"{queue}*")]
        await pool.delete(*keys, in_progress_key_prefix + "job-1", retry_key_prefix + "job-1")

    assert runs == [("first", {"n": 1}), ("second", {"n": 1})]  # the same job, run again, once
