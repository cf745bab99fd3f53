"""Builds and runs a local worker: one consumer per alias, the loaded models, a heartbeat, cancels.

The aliases are those of ``--models`` (``BODHI_LOCAL_MODELS``), or every alias of the catalogue the API keeps,
re-read at once when the API says it changed and, in case that message is lost, every
``BODHI_LOCAL_CATALOGUE_INTERVAL`` seconds. SIGINT/SIGTERM drains (``bodhi_shared.drain``): leave the aliases'
sets and the followers' (the API stops sending), stop consuming, let the running jobs finish for up to
``BODHI_DRAIN_TIMEOUT`` and cancel the rest (each generation stops at its next token, its client told in-band; a
second signal cancels them at once), unload the models, leave the heartbeat set (kept until then: the API checks it
to tell a running job from a dead worker's).
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from bodhi_local_worker.catalogue import CatalogueWatch, read_catalogue, wanted_aliases
from bodhi_local_worker.consumers import AliasConsumers
from bodhi_local_worker.context import LocalWorkerContext
from bodhi_local_worker.gpu import visible_devices
from bodhi_local_worker.models import ModelCache
from bodhi_local_worker.settings import LocalWorkerSettings
from bodhi_shared.cancellation import CancelRegistry
from bodhi_shared.drain import StopSignals
from bodhi_shared.heartbeat import heartbeating, new_worker_id
from bodhi_shared.queue import create_queue_pool
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND
from bodhi_shared.worker_metrics import WorkerMetrics, serving_worker_metrics

log = logging.getLogger(__name__)


async def run_local_worker(settings: LocalWorkerSettings) -> None:
    """Run until SIGINT/SIGTERM."""
    keys = settings.redis_keys
    pool = await create_queue_pool(settings.require_redis_url())
    worker_id = new_worker_id(LOCAL_WORKER_KIND)
    signals = StopSignals(f"local worker {worker_id}")
    signals.install(asyncio.get_running_loop())
    cancels = CancelRegistry(pool, keys.cancel_channel)
    await cancels.start()
    models = ModelCache(settings.local_max_loaded_models, gpu=settings.gpu, n_parallel=settings.local_n_parallel)
    metrics = WorkerMetrics()
    metrics.loaded_models.set_function(lambda: models.loaded_count)
    context = LocalWorkerContext(
        settings=settings, redis=pool, models=models, cancels=cancels, worker_id=worker_id, metrics=metrics
    )
    named = settings.model_aliases
    consumers = AliasConsumers(pool, context, follows_catalogue=named is None)
    watch = CatalogueWatch(pool, keys.local_worker_control)
    log.info(
        "local worker %s gpu=%s CUDA_VISIBLE_DEVICES=%s aliases=%s",
        worker_id,
        settings.device,
        visible_devices(),
        ",".join(named) if named else "(the catalogue)",
    )
    if named:
        await log_definitions(pool, settings, named)
    described = ",".join(keys.local_queue(alias) for alias in named) if named else keys.local_queue("*")
    try:
        if named is None:
            await watch.start()  # before the first read of the catalogue: no change in between is missed
        async with (
            serving_worker_metrics(settings, metrics),
            heartbeating(
                pool,
                keys,
                kind=LOCAL_WORKER_KIND,
                worker_id=worker_id,
                queue=described,
                interval=settings.heartbeat_interval,
                ttl=settings.heartbeat_ttl,
            ),
        ):
            try:
                await serve_until(signals.drain, pool, settings, consumers, changed=watch.changed)
            finally:
                await consumers.stop_all(drain_within=settings.drain_timeout, now=signals.now)
    finally:
        log.info("local worker %s stopping", worker_id)
        await watch.stop()
        await cancels.stop()
        await models.close()
        await pool.aclose()


async def serve_until(
    stopping: asyncio.Event,
    redis: Redis,
    settings: LocalWorkerSettings,
    consumers: AliasConsumers,
    *,
    changed: asyncio.Event,
) -> None:
    """Follow the wanted aliases and refresh their liveness every heartbeat interval, until ``stopping``.

    The catalogue is re-read every ``local_catalogue_interval``, and at once when ``changed`` is set."""
    next_read = 0.0
    while not stopping.is_set():
        try:
            if changed.is_set() or time.monotonic() >= next_read:
                changed.clear()  # before reading: a change made during the read sets it again
                next_read = time.monotonic() + settings.local_catalogue_interval
                catalogue = await read_catalogue(redis, settings.redis_keys)
                await consumers.serve(wanted_aliases(catalogue, settings.model_aliases), catalogue)
            else:
                await consumers.advertise()
        except Exception:  # Redis briefly unreachable: liveness lapses, the next round tries again
            log.warning("refreshing the served aliases failed", exc_info=True)
        await _first_set(stopping, changed, within=settings.heartbeat_interval)


async def _first_set(*events: asyncio.Event, within: float) -> None:
    """Wait until one of ``events`` is set, or ``within`` seconds."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def log_definitions(redis: Redis, settings: LocalWorkerSettings, aliases: list[str]) -> None:
    catalogue = await read_catalogue(redis, settings.redis_keys)
    for alias in aliases:
        model = catalogue.get(alias)
        if model is None:
            log.info("alias %s: not in the catalogue (yet); its jobs carry their model", alias)
        else:
            log.info("alias %s: %s %s", alias, model.path, model.context_params)
