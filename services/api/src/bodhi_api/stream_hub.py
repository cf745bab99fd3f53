"""The API replica's one pub/sub connection, and the per-request buffers it fills.

One ``StreamHub`` per API process holds a single supervised subscription (the replica's own channel and the
control channel) and hands each event to its request's bounded ``Subscription``. A request registers
(``StreamHub.open``) before its job is enqueued, so no early event can be lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis

from bodhi_shared.contract import EventKind, StreamEvent
from bodhi_shared.errors import BodhiError, ServiceUnavailable
from bodhi_shared.pubsub_listener import PubSubListener

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


def error_event(exc: BodhiError) -> StreamEvent:
    """An ERROR the API itself raises while the worker may still be running (marked, so the worker is stopped)."""
    return StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json(), meta={API_SIDE: True})


API_SIDE = "api_side"
