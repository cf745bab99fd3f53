"""Relaying a job's events from Redis pub/sub to the client.

One ``StreamHub`` per API process holds a single pub/sub connection and fans messages out to one
``Subscription`` per request. A request subscribes (and waits for Redis to confirm) before its job is
enqueued, so no early event can be lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from bodhi_api.error_handlers import as_bodhi_error
from bodhi_shared.contract import EventKind, StreamEvent
from bodhi_shared.errors import BodhiError, RelayedError, ServiceUnavailable, UpstreamError, UpstreamTimeout
from bodhi_shared.pubsub_listener import PubSubListener
from bodhi_shared.redis_keys import REMOTE_WORKER_KIND

if TYPE_CHECKING:
    from bodhi_api.resources import Resources

log = logging.getLogger(__name__)

_OVERFLOW = StreamEvent(EventKind.ERROR, data=b"overflow")  # a marker, never published


class ClientTooSlow(ServiceUnavailable):
    status_code = 503
    code = "client_too_slow"


DEFAULT_BUFFER_BYTES = 16 * 1024 * 1024  # BODHI_STREAM_BUFFER_BYTES
# What one buffered event costs beyond its payload (the event object, its bytes' header, the queue's slot),
# charged so that many tiny events count for the memory they take, not only their payloads.
EVENT_OVERHEAD_BYTES = 256


class Subscription:
    """The events of one request, buffered up to a limit (a slow client must not grow memory unbounded).

    The limit is in bytes (``limit_bytes``: payloads plus ``EVENT_OVERHEAD_BYTES`` each), so a few huge chunks
    bound memory as well as many small ones; ``limit`` (events), if given, bounds their number too. One event
    is always taken into an empty buffer, however large (a whole non-streamed answer is one event). Past a limit
    the buffered events are dropped at once (the client will never get them: its answer ends in an error) and
    the reader's next event is ``ClientTooSlow``.
    """

    def __init__(self, request_id: str, *, limit: int | None = None, limit_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        self.request_id = request_id
        self._limit = limit
        self._limit_bytes = limit_bytes
        self._queue: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self._buffered = 0  # bytes charged for the events in the queue
        self._overflowed = False

    def push(self, event: StreamEvent) -> None:
        if self._overflowed:
            return
        size = _charge(event)
        over_count = self._limit is not None and self._queue.qsize() >= self._limit
        if over_count or (self._buffered and self._buffered + size > self._limit_bytes):
            self._overflow()
            return
        self._buffered += size
        self._queue.put_nowait(event)

    def _overflow(self) -> None:
        self._overflowed = True
        log.warning(
            "request %s: its client read too slowly (%d events, %d bytes waiting); cut off",
            self.request_id,
            self._queue.qsize(),
            self._buffered,
        )
        while not self._queue.empty():  # freed now, not when the client gets round to them
            self._queue.get_nowait()
        self._buffered = 0
        self._queue.put_nowait(_OVERFLOW)

    async def next_event(self, wait_s: float) -> StreamEvent:
        """The next event; ``TimeoutError`` after ``wait_s`` seconds of silence."""
        event = await asyncio.wait_for(self._queue.get(), wait_s)
        if event is _OVERFLOW:
            limits = f"{self._limit_bytes} bytes" + (f" or {self._limit} events" if self._limit is not None else "")
            raise ClientTooSlow(f"The client read too slowly: more than {limits} were waiting for it.")
        self._buffered -= _charge(event)
        return event


def _charge(event: StreamEvent) -> int:
    return len(event.data) + EVENT_OVERHEAD_BYTES


class StreamHub:
    """Owns the process's pub/sub connection and hands each event to its request's subscription.

    The replica listens on one channel of its own, subscribed (and confirmed by Redis) at start; every job it
    enqueues names that channel, so events can never be published before anyone listens, and a request costs
    no SUBSCRIBE/UNSUBSCRIBE round trips. Events carry their request id, by which they are routed. The
    subscription is supervised (``PubSubListener``): it comes back after Redis does.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        replica_channel: str,
        control_channel: str,
        on_control: Callable[[bytes], None],
        buffer_limit: int,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ) -> None:
        self._redis = redis
        self.on_reconnect: Callable[[], None] | None = None  # called when the subscription is back after an outage
        self.channel = replica_channel
        self._replica_channel = replica_channel.encode()
        self._control_channel = control_channel.encode()
        self._on_control = on_control
        self._buffer_limit = buffer_limit
        self._buffer_bytes = buffer_bytes
        self._subscriptions: dict[str, Subscription] = {}
        self.listener: PubSubListener | None = None

    async def start(self) -> None:
        # Subscribed (and confirmed by Redis) before the first job names this channel: nothing published to us is
        # lost while the connection holds. When it drops, the events of requests in flight are lost with it, so
        # those requests end at once with an error instead of waiting out their timeouts.
        self.listener = PubSubListener(
            self._redis,
            [self.channel, self._control_channel.decode()],
            self._dispatch,
            name="stream hub",
            on_down=self._fail_all,
            on_up=self._reconnected,
        )
        await self.listener.start()

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.stop()

    @property
    def up(self) -> bool:
        """Whether events published to this replica reach it now."""
        return self.listener is not None and self.listener.up

    def _dispatch(self, channel: str, data: bytes) -> None:
        if channel == self.channel:
            event = StreamEvent.decode(data)
            subscription = self._subscriptions.get(event.request_id)
            if subscription is not None:
                subscription.push(event)
        elif channel.encode() == self._control_channel:
            self._on_control(data)

    def _reconnected(self) -> None:
        if self.on_reconnect is not None:
            self.on_reconnect()

    def _fail_all(self) -> None:
        lost = ServiceUnavailable("The gateway lost its connection to Redis while this request ran; retry it.")
        for subscription in list(self._subscriptions.values()):
            subscription.push(error_event(lost))

    def open(self, request_id: str) -> Subscription:
        """Start collecting the events of ``request_id`` (before its job is enqueued)."""
        subscription = Subscription(request_id, limit=self._buffer_limit, limit_bytes=self._buffer_bytes)
        self._subscriptions[request_id] = subscription
        return subscription

    def close(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription.request_id, None)


def sse_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


SSE_DONE = sse_data(b"[DONE]")
SSE_KEEPALIVE = b": keep-alive\n\n"
LIVENESS_CHECK_S = 1.0


class WorkerLost(UpstreamError):
    status_code = 502
    code = "worker_lost"


class EventReader:
    """Reads one request's events, noticing long silence and a worker that stopped heartbeating."""

    def __init__(self, resources: Resources, subscription: Subscription) -> None:
        self._resources = resources
        self.subscription = subscription
        self.worker_id: str | None = None
        self.worker_kind = REMOTE_WORKER_KIND
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
            if self.worker_id is not None and not await self._worker_alive(self.worker_id):
                return error_event(WorkerLost("The worker serving this request stopped; retry the request."))
            if keepalive_after is not None and now - called_at >= keepalive_after:
                return None

    async def _worker_alive(self, worker_id: str) -> bool:
        resources = self._resources
        seen = await resources.redis.zscore(resources.keys.workers(self.worker_kind), worker_id)
        return seen is not None and time.time() - float(seen) < resources.settings.heartbeat_ttl

    async def first_content(self, received: StreamEvent) -> StreamEvent:
        """The first event after STARTED; an error there becomes an exception, so the client gets a plain
        error response with the provider's status instead of a stream."""
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
        return event


async def publish_cancel(redis: Redis, channel: str, request_id: str) -> None:
    await redis.publish(channel, request_id)


def error_event(exc: BodhiError) -> StreamEvent:
    """An ERROR the API itself raises while the worker may still be running (marked, so the worker is stopped)."""
    return StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json(), meta={API_SIDE: True})


API_SIDE = "api_side"


@dataclass
class Outcome:
    """How a relayed request ended, for usage records and metrics."""

    status: str = "cancelled"  # "ok" | "error" | "cancelled"
    http_status: int = 499
    usage: dict[str, Any] | None = None
    worker_finished: bool = False  # else the relay tells the worker to stop


class Relay:
    """An accepted request whose first content event has arrived; relays the rest, then reports the outcome."""

    def __init__(
        self,
        resources: Resources,
        reader: EventReader,
        first: StreamEvent,
        *,
        request_id: str,
        on_finish: Callable[[Outcome], None],
    ) -> None:
        self._resources = resources
        self._reader = reader
        self.first = first
        self._request_id = request_id
        self._on_finish = on_finish
        self._closed = False

    def close(self, outcome: Outcome) -> None:
        """Stop listening (and tell the worker to stop, if it had not finished); never blocks."""
        if self._closed:
            return
        self._closed = True
        hub, keys = self._resources.hub, self._resources.keys
        hub.close(self._reader.subscription)
        if not outcome.worker_finished:
            self._resources.spawn(publish_cancel(self._resources.redis, keys.cancel_channel, self._request_id))
        self._on_finish(outcome)

    async def _next_or_error(self) -> StreamEvent | None:
        """The next event; any failure to read it (Redis gone while checking the worker, ...) as an ERROR event:
        the response has started, so it can only end in-band."""
        try:
            return await self._reader.next(keepalive_after=self._resources.settings.sse_keepalive_interval)
        except Exception as exc:
            error = as_bodhi_error(exc)
            log.warning("request %s: the stream broke off (%s)", self._request_id, type(exc).__name__, exc_info=exc)
            return error_event(error)

    async def sse(self) -> AsyncIterator[bytes]:
        """The SSE body: chunks as they arrive, keep-alives while waiting, an in-band error if one comes, then
        ``[DONE]``. A client that goes away cancels the job."""
        outcome = Outcome()
        try:
            event: StreamEvent | None = self.first
            while True:
                if event is None:
                    yield SSE_KEEPALIVE
                elif event.kind == EventKind.CHUNK:
                    yield event.data
                elif event.kind == EventKind.DONE:
                    outcome = Outcome("ok", 200, event.usage, worker_finished=True)
                    yield SSE_DONE
                    break
                elif event.kind == EventKind.ERROR:
                    outcome = Outcome("error", event.status, worker_finished=not (event.meta or {}).get(API_SIDE))
                    yield sse_data(event.data) + SSE_DONE
                    break
                event = await self._next_or_error()
        finally:
            self.close(outcome)
