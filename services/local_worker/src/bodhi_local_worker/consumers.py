"""One arq consumer per alias, all in one process, and the per-alias liveness the API checks before enqueueing.

Each alias has its own queue (``RedisKeys.local_queue(alias)``) and its own ``WakeableWorker``, which claims as
many of its jobs as the alias's model has slots (``max_jobs``: its ``n_parallel``, ``models.n_parallel_of``): the
model's batching engine runs them at once. A change of the alias's ``n_parallel`` in the catalogue restarts its
consumer with the new count (the running jobs finish). The workers share one Redis pool and one job context. While
an alias is consumed, this worker is a member of ``RedisKeys.alias_workers(alias)``, scored by the time of its last
beat (``advertise``, every heartbeat interval), and its description (``RedisKeys.worker_info``) holds its slots in
use and free (``heartbeat.SLOTS_FIELD``, read by the API's ``/health`` and metrics).
A worker that follows the catalogue is also a member of ``RedisKeys.local_followers``: while one is alive, the API
waits a moment for it to start serving a new alias instead of answering 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from arq import ArqRedis, func

from bodhi_local_worker.context import CONTEXT_KEY, LocalWorkerContext
from bodhi_local_worker.inference_job import inference
from bodhi_local_worker.models import n_parallel_of
from bodhi_shared.contract import INFERENCE_FUNCTION, LocalModel
from bodhi_shared.drain import finish_or_cancel
from bodhi_shared.heartbeat import slots_fields
from bodhi_shared.queue import LOOP_EXIT_WAIT_S, WakeableWorker

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Consumer:
    worker: WakeableWorker
    task: asyncio.Task[None]  # the polling loop
    slots: int  # jobs it runs at once
    drained: asyncio.Task[None] | None = None  # once stopped: waits for the running jobs

    @property
    def in_use(self) -> int:
        return min(self.slots, self.worker.job_counter)


class AliasConsumers:
    def __init__(self, pool: ArqRedis, context: LocalWorkerContext, *, follows_catalogue: bool) -> None:
        self._pool = pool
        self._context = context
        self._follows_catalogue = follows_catalogue
        self._consumers: dict[str, _Consumer] = {}
        self._draining: set[_Consumer] = set()  # stopped, their running jobs not yet finished

    @property
    def aliases(self) -> list[str]:
        return sorted(self._consumers)

    def slots_for(self, local: LocalModel | None) -> int:
        """How many jobs of an alias to run at once: its model's ``n_parallel`` (the default when the alias is not
        in the catalogue: its jobs carry their model)."""
        settings = self._context.settings
        params = local.context_params if local is not None else {}
        return n_parallel_of(params, gpu=settings.gpu, default=settings.local_n_parallel)

    def _build(self, alias: str, slots: int) -> WakeableWorker:
        settings, keys = self._context.settings, self._context.settings.redis_keys
        queue = keys.local_queue(alias)
        return WakeableWorker(
            # Never retried: tokens may already have reached the client, and output must not be doubled.
            functions=[func(inference, name=INFERENCE_FUNCTION, max_tries=1, timeout=settings.job_timeout)],
            queue_name=queue,
            wake_channel=keys.wake_channel(queue),
            worker_id=self._context.worker_id,  # named by each claim (``queue.claim_key``)
            redis_pool=self._pool,
            max_jobs=slots,
            poll_delay=settings.queue_poll_interval,
            keep_result=0,
            handle_signals=False,
            ctx={CONTEXT_KEY: self._context},
        )

    async def serve(self, aliases: Iterable[str], catalogue: Mapping[str, LocalModel] | None = None) -> None:
        """Consume exactly the queues of ``aliases``, each with its model's slots (``catalogue``): start the new
        ones, stop the gone ones and those whose slots changed (their jobs finish)."""
        slots = {alias: self.slots_for((catalogue or {}).get(alias)) for alias in aliases}
        self._reap()
        for alias in sorted(self._consumers):
            if slots.get(alias) != self._consumers[alias].slots:
                await self.stop(alias)
        for alias in sorted(set(slots) - set(self._consumers)):
            worker = self._build(alias, slots[alias])
            self._consumers[alias] = _Consumer(worker, asyncio.create_task(worker.async_run()), slots[alias])
            log.info("consuming %s (alias %s), %d at once", worker.queue_name, alias, slots[alias])
        await self.advertise()

    def slots(self) -> dict[str, tuple[int, int]]:
        """Each served alias's slots: (in use, free)."""
        return {alias: (c.in_use, c.slots - c.in_use) for alias, c in sorted(self._consumers.items())}

    def _reap(self) -> None:
        """Forget consumers whose loop ended on an error (Redis unreachable, ...): the next ``serve`` restarts them."""
        for alias, consumer in list(self._consumers.items()):
            if consumer.task.done():
                del self._consumers[alias]
                error = None if consumer.task.cancelled() else consumer.task.exception()
                log.error("the consumer of alias %s stopped: %r; restarting it", alias, error)

    async def advertise(self) -> None:
        """Refresh this worker's score in each served alias's set, and the aliases in its description."""
        context = self._context
        keys, settings = context.settings.redis_keys, context.settings
        info_key = keys.worker_info(context.worker_id)
        now = time.time()
        async with self._pool.pipeline(transaction=False) as pipe:
            for alias in self._consumers:
                pipe.zadd(keys.alias_workers(alias), {context.worker_id: now})
            if self._follows_catalogue:
                pipe.zadd(keys.local_followers, {context.worker_id: now})
                # Killed followers never leave: drop the long dead, as live_workers does for each kind's set.
                pipe.zremrangebyscore(keys.local_followers, "-inf", now - settings.heartbeat_ttl * 4)
            described = {"aliases": ",".join(self.aliases), "gpu": settings.device}
            pipe.hset(info_key, mapping=described | slots_fields(self.slots()))
            pipe.pexpire(info_key, int(settings.heartbeat_ttl * 1000))
            await pipe.execute()

    async def stop(self, alias: str) -> None:
        """Leave the alias's set first (the API stops sending), stop polling; its running jobs end in the background."""
        consumer = self._consumers.pop(alias)
        with contextlib.suppress(Exception):  # Redis may be gone on the way out: liveness then expires
            await self._pool.zrem(self._context.settings.redis_keys.alias_workers(alias), self._context.worker_id)
        consumer.worker.stop_taking_jobs()  # its loop ends after a claim it is making: that job runs too
        await asyncio.wait({consumer.task}, timeout=LOOP_EXIT_WAIT_S)
        consumer.task.cancel()  # still there only while Redis hangs
        await asyncio.gather(consumer.task, return_exceptions=True)
        self._draining.add(consumer)
        consumer.drained = asyncio.create_task(self._drain(alias, consumer))

    async def _drain(self, alias: str, consumer: _Consumer) -> None:
        await asyncio.gather(*consumer.worker.tasks.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._pool.delete(consumer.worker.health_check_key)
        self._draining.discard(consumer)
        log.info("stopped consuming %s (alias %s)", consumer.worker.queue_name, alias)

    async def stop_all(self, *, drain_within: float, now: asyncio.Event) -> None:
        """The drain: leave every set that sends this worker jobs, stop every consumer, let the running jobs finish
        for up to ``drain_within`` seconds (until ``now`` is set, at most), then cancel the rest (each generation
        stops at its next token)."""
        deadline = time.monotonic() + drain_within
        await self._leave_all()  # first, all at once: the API stops sending to any of them
        for alias in list(self._consumers):
            await self.stop(alias)
        draining = list(self._draining)
        jobs = [job for consumer in draining for job in consumer.worker.tasks.values()]
        await finish_or_cancel(jobs, within=max(0.0, deadline - time.monotonic()), now=now)
        await asyncio.gather(*(consumer.drained for consumer in draining if consumer.drained is not None))

    async def _leave_all(self) -> None:
        keys, worker_id = self._context.settings.redis_keys, self._context.worker_id
        with contextlib.suppress(Exception):  # Redis may be gone on the way out: liveness then expires
            async with self._pool.pipeline(transaction=False) as pipe:
                for alias in self._consumers:
                    pipe.zrem(keys.alias_workers(alias), worker_id)
                if self._follows_catalogue:  # the API stops waiting for this worker to serve new aliases
                    pipe.zrem(keys.local_followers, worker_id)
                await pipe.execute()
