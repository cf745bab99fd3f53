"""Reading one request's events: its first content, then each next event, noticing silence and a worker that
stopped heartbeating."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from bodhi_api.stream_hub import Subscription, error_event
from bodhi_shared.contract import EventKind, StreamEvent
from bodhi_shared.errors import BodhiError, RelayedError, UpstreamError, UpstreamTimeout
from bodhi_shared.redis_keys import REMOTE_WORKER_KIND

if TYPE_CHECKING:
    from bodhi_api.resources import Resources

log = logging.getLogger(__name__)

LIVENESS_CHECK_S = 1.0


class WorkerLost(UpstreamError):
    status_code = 502
    code = "worker_lost"


def worker_lost() -> WorkerLost:
    return WorkerLost("The worker serving this request stopped; retry the request.")


class LostBeforeContent(Exception):  # a signal to ``dispatch``, not an error a client sees
    """The worker that took a job stopped before any of its answer reached the client: the job may run again
    (``dispatch.dispatch``)."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(worker_id)
        self.worker_id = worker_id


class EventReader:
    """Reads one request's events, noticing long silence and a worker that stopped heartbeating.

    Until ``first_content`` has returned, nothing of the answer has reached the client: a lost worker then raises
    ``LostBeforeContent`` (the job may run again) instead of ending the request with a ``WorkerLost`` error.
    """

    def __init__(
        self, resources: Resources, subscription: Subscription, *, worker_kind: str = REMOTE_WORKER_KIND
    ) -> None:
        self._resources = resources
        self.subscription = subscription
        self.worker_id: str | None = None
        self.worker_kind = worker_kind
        self.relaying = False  # the first content event was handed out: the client may have part of the answer
        self._last_event_at = time.monotonic()

    def restart(self) -> None:
        """For the same job enqueued again: no worker has it yet, and its silence counts from now."""
        self.worker_id = None
        self._last_event_at = time.monotonic()

    async def next(self, *, keepalive_after: float | None = None) -> StreamEvent | None:
        """The next event; None when ``keepalive_after`` seconds passed without one (time for a keep-alive).

        Silence longer than the idle timeout, or the worker's heartbeat stopping, become ERROR events.
        """
        settings = self._resources.settings
        called_at = time.monotonic()
        wait_s = min(LIVENESS_CHECK_S, keepalive_after) if keepalive_after else LIVENESS_CHECK_S
        while True:
            try:
                event = await self.subscription.next_event(wait_s)
            except TimeoutError:
                pass
            except BodhiError as exc:
                return error_event(exc)
            else:
                self._last_event_at = time.monotonic()
                return event
            now = time.monotonic()
            if now - self._last_event_at >= settings.stream_idle_timeout:
                silent = now - self._last_event_at
                return error_event(UpstreamTimeout(f"No data for {silent:.0f} s; the request was stopped."))
            if self.worker_id is not None and not await self.worker_alive(self.worker_id):
                if not self.relaying:
                    raise LostBeforeContent(self.worker_id)
                return error_event(worker_lost())
            if keepalive_after is not None and now - called_at >= keepalive_after:
                return None

    async def worker_alive(self, worker_id: str) -> bool:
        """Whether the worker (of ``worker_kind``) has sent a heartbeat within the heartbeat TTL."""
        resources = self._resources
        seen = await resources.redis.zscore(resources.keys.workers(self.worker_kind), worker_id)
        return seen is not None and time.time() - float(seen) < resources.settings.heartbeat_ttl

    async def first_content(self, received: StreamEvent) -> StreamEvent:
        """The first event after STARTED; an error there becomes an exception, so the client gets a plain
        error response with the provider's status instead of a stream. ``LostBeforeContent`` if the worker stops
        before it."""
        event: StreamEvent | None = received
        if received.kind == EventKind.STARTED:
            meta = received.meta or {}
            self.worker_id = str(meta.get("worker") or "") or None
            self.worker_kind = str(meta.get("kind") or REMOTE_WORKER_KIND)
            event = await self.next()
        assert event is not None
        if event.kind == EventKind.ERROR:
            headers = (event.meta or {}).get("headers")  # a provider's Retry-After / x-ratelimit-*, if any
            raise RelayedError(event.status, event.data, headers=headers if isinstance(headers, dict) else None)
        self.relaying = True
        return event


async def publish_cancel(redis: Redis, channel: str, request_id: str) -> None:
    await redis.publish(channel, request_id)
