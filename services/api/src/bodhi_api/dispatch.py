"""Sending a job to the workers and waiting until one has taken it: the step between routing and relaying."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bodhi_api.auth.limits import limit_error
from bodhi_api.error_handlers import DependencyUnavailable
from bodhi_api.event_reader import EventReader, LostBeforeContent, publish_cancel, worker_lost
from bodhi_api.http_errors import TooManyRequests
from bodhi_api.resources import Resources
from bodhi_shared.contract import StreamEvent
from bodhi_shared.errors import ServiceUnavailable
from bodhi_shared.heartbeat import has_live_member, wait_for_live_member
from bodhi_shared.queue import (
    NoLiveWorker,
    QueueFull,
    claim_key,
    enqueue_if_capacity,
    last_active,
    requeue_job,
    withdraw_job,
)
from bodhi_shared.rate_limits import LimitCheck, LimitExceeded, LimitState
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND, REMOTE_WORKER_KIND, RedisKeys

log = logging.getLogger(__name__)

PICKUP_CHECK_S = 1.0
# How many times one request's job is enqueued again after the worker that took it died before the client got
# anything (``dispatch``). Bounded: a job that kills its worker (a model that crashes llama.cpp) must not go on
# to kill every worker of its queue.
MAX_REDISPATCHES = 1
# How long a request for a local alias nobody serves yet waits for a catalogue-following worker to start serving
# it: the API's notice makes that milliseconds; the worker's periodic re-read (2 s) bounds it if the notice is lost.
FOLLOWER_START_WAIT_S = 5.0


class NoWorkerAvailable(ServiceUnavailable):
    code = "no_worker_available"


@dataclass(frozen=True, slots=True)
class QueueTarget:
    """Which queue a job goes to, which workers must be alive to take it, and how to start one."""

    queue: str
    live_workers: str  # a sorted set of worker ids scored by their last heartbeat
    start_hint: str
    # Local aliases: the catalogue-following local workers (any of them starts serving a new alias within
    # moments), and what the 503 says when neither they nor a worker serving the alias is alive.
    followers: str | None = None
    absent: str = ""
    worker_kind: str = REMOTE_WORKER_KIND  # whose heartbeats (``RedisKeys.workers(kind)``) tell a dead worker

    @classmethod
    def remote(cls, keys: RedisKeys) -> QueueTarget:
        return cls(keys.remote_queue, keys.workers(REMOTE_WORKER_KIND), "a remote worker (`bodhi remote-worker`)")

    @classmethod
    def local(cls, keys: RedisKeys, alias: str) -> QueueTarget:
        return cls(
            keys.local_queue(alias),
            keys.alias_workers(alias),
            f"a local worker serving `{alias}` (`bodhi local-worker --models {alias}`) or one that follows the "
            "catalogue (`bodhi local-worker`)",
            followers=keys.local_followers,
            absent=": no local worker serves it or follows the catalogue",
            worker_kind=LOCAL_WORKER_KIND,
        )

    def no_worker(self, subject: str) -> NoWorkerAvailable:
        return NoWorkerAvailable(
            f"No worker is running to serve {subject}{self.absent}. Start {self.start_hint}, then retry."
        )


async def dispatch(
    resources: Resources,
    *,
    target: QueueTarget,
    function: str,
    payload: dict[str, Any],
    request_id: str,
    subject: str,
    limits: Sequence[LimitCheck] = (),
    admitted: list[LimitState] | None = None,
) -> tuple[EventReader, StreamEvent]:
    """Enqueue (if a worker is alive, the queue has room and the caller's rate limits and budgets in ``limits``
    allow it: 429 otherwise, ``auth.limits.limit_error``; what is left of each goes into ``admitted``), then
    wait for a worker's STARTED and the first content event.

    The job's ``channel`` in ``payload`` must be this replica's (``hub.channel``), where its events arrive.
    ``subject`` names what was asked for (``model `x```) in the 503 a client gets when no worker can take it.
    Returns the reader of the remaining events and the first content event; the caller closes the subscription.

    A worker that dies (its heartbeat stops) after it took the job but before its first content event has sent the
    client nothing: the same job, under the same id, is enqueued again for another worker (``_redispatch``), at
    most ``MAX_REDISPATCHES`` times; past that, or with no worker left, the client gets 502 ``worker_lost``.
    """
    keys, redis = resources.keys, resources.redis
    queue = target.queue
    if not resources.hub.up:  # the worker's answer could not reach this replica: refuse now, not after a timeout
        raise DependencyUnavailable("The gateway lost its connection to Redis and is reconnecting; retry shortly.")
    subscription = resources.hub.open(request_id)  # before the job exists: no event can be missed
    reader = EventReader(resources, subscription, worker_kind=target.worker_kind)
    enqueued = False
    try:
        states = await _enqueue(
            resources,
            target=target,
            function=function,
            payload=payload,
            request_id=request_id,
            subject=subject,
            limits=limits,
        )
        if admitted is not None:
            admitted.extend(states)
        enqueued = True
        redispatches = 0
        while True:
            try:
                started = await _wait_for_pickup(
                    resources, target=target, reader=reader, request_id=request_id, subject=subject
                )
                return reader, await reader.first_content(started)
            except LostBeforeContent as lost:
                if redispatches >= MAX_REDISPATCHES:
                    raise worker_lost() from None
                redispatches += 1
                await _redispatch(
                    resources, target=target, function=function, payload=payload, request_id=request_id, lost=lost
                )
                reader.restart()
    except BaseException:
        resources.hub.close(subscription)
        if enqueued:  # e.g. the client left while it waited: nobody should run it (no-op once a worker took it)
            resources.spawn(withdraw_job(redis, queue=queue, job_id=request_id))
        # Harmless when the worker already finished (or never started): cancelling an unknown job does nothing.
        resources.spawn(publish_cancel(redis, keys.cancel_channel, request_id))
        raise


async def _enqueue(
    resources: Resources,
    *,
    target: QueueTarget,
    function: str,
    payload: dict[str, Any],
    request_id: str,
    subject: str,
    limits: Sequence[LimitCheck] = (),
) -> list[LimitState]:
    """Enqueue if a worker of the target is alive, the queue has room and ``limits`` allow it; 429 or 503 otherwise.

    The hot path is one round trip, limits included. Only a local alias without a live worker costs more: the
    wait of ``_wait_for_follower``, then one more try.
    """
    settings, keys = resources.settings, resources.keys

    async def attempt() -> list[LimitState]:
        return await enqueue_if_capacity(
            resources.redis,
            queue=target.queue,
            wake_channel=keys.wake_channel(target.queue),
            live_workers=target.live_workers,
            heartbeat_ttl=settings.heartbeat_ttl,
            depth_limit=settings.queue_depth_limit,
            function=function,
            payload=payload,
            job_id=request_id,
            expires_s=settings.queue_wait_limit + 60,
            limits=limits,
        )

    try:
        try:
            return await attempt()
        except NoLiveWorker:
            await _wait_for_follower(resources, target=target, subject=subject)
            return await attempt()
    except LimitExceeded as exceeded:
        raise limit_error(exceeded) from None
    except QueueFull as full:
        raise TooManyRequests(
            f"{full.depth} requests are waiting for a worker, over the limit of {settings.queue_depth_limit}. "
            "Retry shortly.",
            retry_after_s=1,
        ) from None
    except NoLiveWorker:  # the worker that had just started serving it stopped again
        raise target.no_worker(subject) from None


async def _redispatch(
    resources: Resources,
    *,
    target: QueueTarget,
    function: str,
    payload: dict[str, Any],
    request_id: str,
    lost: LostBeforeContent,
) -> None:
    """Enqueue the job again after its worker died before sending its first content; 502 ``worker_lost`` when no
    worker of the target is alive to take it.

    The cancel goes first: should the worker only have looked dead (a heartbeat stalled past its TTL), it stops the
    job, so two workers never answer one request. A cancel reaches only jobs running at that moment, not the job
    enqueued after it.
    """
    settings, keys, redis = resources.settings, resources.keys, resources.redis
    log.warning(
        "request %s: worker %s stopped before sending any of the answer; enqueuing the job again",
        request_id,
        lost.worker_id,
    )
    await publish_cancel(redis, keys.cancel_channel, request_id)
    try:
        await requeue_job(
            redis,
            queue=target.queue,
            wake_channel=keys.wake_channel(target.queue),
            live_workers=target.live_workers,
            heartbeat_ttl=settings.heartbeat_ttl,
            function=function,
            payload=payload,
            job_id=request_id,
            expires_s=settings.queue_wait_limit + 60,
        )
    except NoLiveWorker:
        raise worker_lost() from None


async def _wait_for_follower(resources: Resources, *, target: QueueTarget, subject: str) -> None:
    """Return once the target has a live worker, if a catalogue-following local worker is alive to start one.

    An alias created a moment ago has no worker yet: the followers start serving it as soon as they hear of it.
    503 when no follower is alive, or when none started serving it within ``FOLLOWER_START_WAIT_S``.
    """
    redis, ttl = resources.redis, resources.settings.heartbeat_ttl
    if target.followers is None or not await has_live_member(redis, target.followers, ttl=ttl):
        raise target.no_worker(subject)
    if not await wait_for_live_member(redis, target.live_workers, ttl=ttl, within=FOLLOWER_START_WAIT_S):
        raise NoWorkerAvailable(
            f"No worker is serving {subject}: a local worker follows the catalogue but has not started serving it "
            f"within {FOLLOWER_START_WAIT_S:g} s. Check that worker's log (it names catalogue entries it refused and "
            "Redis errors), then retry."
        )


async def _wait_for_pickup(
    resources: Resources, *, target: QueueTarget, reader: EventReader, request_id: str, subject: str
) -> StreamEvent:
    """A worker's first event; 503 once every worker of the target has gone, or the queue has stalled;
    ``LostBeforeContent`` when the worker that claimed the job died before its STARTED (``queue.claim_key``).

    Looking at the heartbeats each second means a killed worker costs a client seconds, not the whole timeout.
    A queue has stalled when, for ``pickup_timeout`` seconds while this job waited, no worker took a job off it or
    ran one. Busy workers keep their queue active (a local worker answers one request at a time), so a request
    behind others waits for its turn, up to ``queue_timeout``.
    """
    settings, redis, subscription = resources.settings, resources.redis, reader.subscription
    waiting_since = time.monotonic()
    give_up = waiting_since + settings.queue_wait_limit
    deadline = waiting_since + settings.pickup_timeout
    while True:
        try:
            return await subscription.next_event(min(PICKUP_CHECK_S, max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            pass
        gone = await _claimer_or_gone(resources, target=target, reader=reader, request_id=request_id)
        now = time.monotonic()
        if not gone and deadline <= now < give_up:
            active = await last_active(redis, target.queue)
            if active is not None:  # busy workers: wait on, until pickup_timeout after they were last seen working
                deadline = max(deadline, min(give_up, now + active + settings.pickup_timeout - time.time()))
        if (gone or now >= deadline) and await withdraw_job(redis, queue=target.queue, job_id=request_id):
            if gone:
                reason = (
                    f"every worker that could take it stopped. Check that {target.start_hint} is running, then retry"
                )
            elif now >= give_up and settings.queue_timeout > settings.pickup_timeout:
                reason = (
                    f"it waited {settings.queue_wait_limit:g} s behind other requests. Retry later, or start more "
                    f"workers: {target.start_hint}"
                )
            else:
                reason = (
                    f"no worker took or ran a request of its queue for {settings.pickup_timeout:g} s. Check that "
                    f"{target.start_hint} is running, then retry"
                )
            raise NoWorkerAvailable(f"The request for {subject} was not served: {reason}.")
        if now >= deadline + settings.pickup_timeout:  # taken at the last moment, yet never started
            raise NoWorkerAvailable(f"The worker that took the request for {subject} never started it; retry.")


async def _claimer_or_gone(resources: Resources, *, target: QueueTarget, reader: EventReader, request_id: str) -> bool:
    """Whether every worker of the target has gone (one round trip); ``LostBeforeContent`` if the worker that
    claimed the job has stopped heartbeating (a second one, only between a claim and its STARTED)."""
    async with resources.redis.pipeline(transaction=False) as pipe:
        pipe.zcount(target.live_workers, time.time() - resources.settings.heartbeat_ttl, "+inf")
        pipe.get(claim_key(target.queue, request_id))
        live, claimer = await pipe.execute()
    if claimer is not None:
        worker_id = claimer.decode() if isinstance(claimer, bytes) else str(claimer)
        if not await reader.worker_alive(worker_id):
            raise LostBeforeContent(worker_id)
    return not live
