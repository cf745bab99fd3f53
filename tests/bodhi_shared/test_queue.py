"""The queue on a real Redis: a worker's claim takes the job off the queue and marks the queue active."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from arq.worker import func

from bodhi_shared.queue import (
    WakeableWorker,
    create_queue_pool,
    enqueue_if_capacity,
    last_active,
    withdraw_job,
)


async def test_a_claimed_job_leaves_the_queue_and_marks_it_active(redis_url: str, redis_prefix: str) -> None:
    pool = await create_queue_pool(redis_url)
    queue = f"{redis_prefix}:queue:test-{uuid.uuid4().hex[:8]}"
    live_workers = f"{queue}:workers"
    running, release, ended = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def job(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        running.set()
        try:
            await release.wait()
        finally:
            ended.set()

    worker = WakeableWorker(
        functions=[func(job, name="job", max_tries=1)],
        queue_name=queue,
        wake_channel=f"{queue}:wake",
        redis_pool=pool,
        max_jobs=1,
        poll_delay=0.05,
        keep_result=0,
        handle_signals=False,
    )
    main = asyncio.ensure_future(worker.async_run())
    try:
        await pool.zadd(live_workers, {"test-worker": time.time() + 60})  # the worker finds it by polling or waking
        before = time.time()
        await enqueue_if_capacity(
            pool,
            queue=queue,
            wake_channel=f"{queue}:wake",
            live_workers=live_workers,
            heartbeat_ttl=3,
            depth_limit=10,
            function="job",
            payload={},
            job_id="job-1",
            expires_s=60,
        )
        await asyncio.wait_for(running.wait(), 5)

        assert await pool.zcard(queue) == 0  # waiting jobs only: the running one is not counted as waiting
        assert not await withdraw_job(pool, queue=queue, job_id="job-1")  # too late: a worker runs it
        active = await last_active(pool, queue)
        assert active is not None
        assert active >= before - 1
    finally:
        release.set()
        if running.is_set():
            await asyncio.wait_for(ended.wait(), 5)
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        await pool.delete(live_workers, f"{queue}:active-at")
        await pool.aclose()
