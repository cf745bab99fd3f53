"""Builds and runs a remote worker: an arq worker on the remote queue, a heartbeat, cancels, an httpx client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from arq import ArqRedis, func

from bodhi_remote_worker.check_jobs import check_connection, fetch_models
from bodhi_remote_worker.context import CONTEXT_KEY, RemoteWorkerContext
from bodhi_remote_worker.guarded_transport import provider_client
from bodhi_remote_worker.inference_job import inference
from bodhi_remote_worker.settings import RemoteWorkerSettings
from bodhi_shared.cancellation import CancelRegistry
from bodhi_shared.contract import FETCH_MODELS_FUNCTION, INFERENCE_FUNCTION, TEST_CONNECTION_FUNCTION
from bodhi_shared.heartbeat import heartbeating, new_worker_id
from bodhi_shared.queue import WakeableWorker, create_queue_pool
from bodhi_shared.redis_keys import REMOTE_WORKER_KIND
from bodhi_shared.worker_keys import WorkerKeyring

log = logging.getLogger(__name__)


def build_worker(
    settings: RemoteWorkerSettings, pool: ArqRedis, *, worker_id: str, cancels: CancelRegistry
) -> WakeableWorker:
    keys = settings.redis_keys
    keyring = WorkerKeyring(settings)
    http = provider_client(settings)

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx[CONTEXT_KEY] = RemoteWorkerContext(
            settings=settings, redis=ctx["redis"], http=http, keyring=keyring, cancels=cancels, worker_id=worker_id
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await http.aclose()

    return WakeableWorker(
        functions=[
            # Never retried: tokens may already have reached the client, and output must not be doubled.
            func(inference, name=INFERENCE_FUNCTION, max_tries=1, timeout=settings.job_timeout),
            # Checks retry inside the job (test_connection's backoff); the job itself runs once.
            func(fetch_models, name=FETCH_MODELS_FUNCTION, max_tries=1, timeout=120),
            func(check_connection, name=TEST_CONNECTION_FUNCTION, max_tries=1, timeout=120),
        ],
        queue_name=keys.remote_queue,
        wake_channel=keys.wake_channel(keys.remote_queue),
        redis_pool=pool,
        max_jobs=settings.max_jobs,
        poll_delay=settings.queue_poll_interval,
        keep_result=0,
        handle_signals=False,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )


async def run_remote_worker(settings: RemoteWorkerSettings) -> None:
    """Run until SIGINT/SIGTERM; running jobs are cancelled and the heartbeat removed on the way out."""
    keys = settings.redis_keys
    pool = await create_queue_pool(settings.require_redis_url())
    worker_id = new_worker_id(REMOTE_WORKER_KIND)
    loop = asyncio.get_running_loop()
    cancels = CancelRegistry(pool, keys.cancel_channel)
    await cancels.start()
    worker = build_worker(settings, pool, worker_id=worker_id, cancels=cancels)
    main = asyncio.ensure_future(worker.async_run())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    log.info("remote worker %s consuming %s", worker_id, keys.remote_queue)
    try:
        async with heartbeating(
            pool,
            keys,
            kind=REMOTE_WORKER_KIND,
            worker_id=worker_id,
            queue=keys.remote_queue,
            interval=settings.heartbeat_interval,
            ttl=settings.heartbeat_ttl,
        ):
            with contextlib.suppress(asyncio.CancelledError):
                await main
    finally:
        await cancels.stop()
        await worker.close()  # closes the pool: last
