"""Builds and runs a remote worker: an arq worker on the remote queue, a heartbeat, cancels, an httpx client."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import ArqRedis, func

from bodhi_remote_worker.check_jobs import check_connection, fetch_models
from bodhi_remote_worker.context import CONTEXT_KEY, RemoteWorkerContext
from bodhi_remote_worker.guarded_transport import provider_client
from bodhi_remote_worker.inference_job import inference
from bodhi_remote_worker.settings import RemoteWorkerSettings
from bodhi_shared.cancellation import CancelRegistry
from bodhi_shared.contract import FETCH_MODELS_FUNCTION, INFERENCE_FUNCTION, TEST_CONNECTION_FUNCTION
from bodhi_shared.drain import StopSignals
from bodhi_shared.heartbeat import heartbeating, new_worker_id
from bodhi_shared.queue import WakeableWorker, create_queue_pool
from bodhi_shared.redis_keys import REMOTE_WORKER_KIND
from bodhi_shared.worker_keys import WorkerKeyring
from bodhi_shared.worker_metrics import WorkerMetrics, serving_worker_metrics

log = logging.getLogger(__name__)


def build_worker(
    settings: RemoteWorkerSettings,
    pool: ArqRedis,
    *,
    worker_id: str,
    cancels: CancelRegistry,
    metrics: WorkerMetrics | None = None,
) -> WakeableWorker:
    keys = settings.redis_keys
    keyring = WorkerKeyring(settings)
    http = provider_client(settings)
    counted = metrics or WorkerMetrics()

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx[CONTEXT_KEY] = RemoteWorkerContext(
            settings=settings,
            redis=ctx["redis"],
            http=http,
            keyring=keyring,
            cancels=cancels,
            worker_id=worker_id,
            metrics=counted,
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
        worker_id=worker_id,  # each claim names this worker: the API re-dispatches a job it dies on before STARTED
        redis_pool=pool,
        max_jobs=settings.max_jobs,
        poll_delay=settings.queue_poll_interval,
        keep_result=0,
        handle_signals=False,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )


async def run_remote_worker(settings: RemoteWorkerSettings) -> None:
    """Run until SIGINT/SIGTERM, then drain (``bodhi_shared.drain``): take no more jobs, let the running ones
    finish for up to ``BODHI_DRAIN_TIMEOUT``, cancel the rest (each client is told in-band); a second signal cancels
    them at once. The heartbeat is removed on the way out.
    """
    keys = settings.redis_keys
    pool = await create_queue_pool(settings.require_redis_url())
    worker_id = new_worker_id(REMOTE_WORKER_KIND)
    signals = StopSignals(f"remote worker {worker_id}")
    signals.install(asyncio.get_running_loop())
    cancels = CancelRegistry(pool, keys.cancel_channel)
    await cancels.start()
    metrics = WorkerMetrics()
    worker = build_worker(settings, pool, worker_id=worker_id, cancels=cancels, metrics=metrics)
    main = asyncio.ensure_future(worker.async_run())
    log.info("remote worker %s consuming %s", worker_id, keys.remote_queue)
    try:
        # The heartbeat goes on while draining: the API checks it to tell a job that runs from one whose worker
        # died, and this worker's heartbeat set is also what it sends remote jobs by. So new requests may still be
        # queued meanwhile: other workers take them; this one claims none.
        async with (
            serving_worker_metrics(settings, metrics),
            heartbeating(
                pool,
                keys,
                kind=REMOTE_WORKER_KIND,
                worker_id=worker_id,
                queue=keys.remote_queue,
                interval=settings.heartbeat_interval,
                ttl=settings.heartbeat_ttl,
            ),
        ):
            await _until_stopped(main, signals)
            cancelled = await worker.drain(within=settings.drain_timeout, now=signals.now)
            log.info("remote worker %s drained (%d job(s) cut short)", worker_id, cancelled)
    finally:
        main.cancel()  # ended by the drain already, unless something failed first
        await asyncio.gather(main, return_exceptions=True)
        await cancels.stop()
        await worker.close()  # closes the pool: last


async def _until_stopped(main: asyncio.Future[Any], signals: StopSignals) -> None:
    """Until the first stop signal; an error that ends the worker's loop first is raised."""
    stop: asyncio.Future[Any] = asyncio.ensure_future(signals.drain.wait())
    try:
        await asyncio.wait({main, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if main.done():
        main.result()
