"""Relaying a job's events from Redis pub/sub to the client.

One ``StreamHub`` per API process holds a single pub/sub connection and fans messages out to one
``Subscription`` per request. A request subscribes (and waits for Redis to confirm) before its job is
enqueued, so no early event can be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from bodhi_shared.contract import EventKind, StreamEvent
from bodhi_shared.errors import BodhiError, RelayedError, UpstreamTimeout

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0
_OVERFLOW = b""  # never a valid encoded event


class ClientTooSlow(BodhiError):
    status_code = 503
    code = "client_too_slow"


class Subscription:
    """The events of one request, buffered up to a limit (a slow client must not grow memory unbounded)."""

    def __init__(self, channel: bytes, *, limit: int) -> None:
        self.channel = channel
        self._limit = limit
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._overflowed = False

    def push(self, raw: bytes) -> None:
        if self._overflowed:
            return
        if self._queue.qsize() >= self._limit:
            self._overflowed = True
            raw = _OVERFLOW
        self._queue.put_nowait(raw)

    async def next_event(self, wait_s: float) -> StreamEvent:
        """The next event; ``TimeoutError`` after ``wait_s`` seconds of silence."""
        raw = await asyncio.wait_for(self._queue.get(), wait_s)
        if raw == _OVERFLOW:
            raise ClientTooSlow(f"The client read too slowly: more than {self._limit} events were waiting.")
        return StreamEvent.decode(raw)


class StreamHub:
    """Owns the process's pub/sub connection and routes each message to its request's subscription."""

    def __init__(self, redis: Redis, *, idle_channel: str, buffer_limit: int) -> None:
        self._redis = redis
        self._idle_channel = idle_channel
        self._buffer_limit = buffer_limit
        self._subscriptions: dict[bytes, Subscription] = {}
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pubsub = self._redis.pubsub()
        # An always-present subscription keeps listen() reading even when no request is in flight.
        await self._pubsub.subscribe(self._idle_channel)
        self._listener = asyncio.create_task(self._listen(self._pubsub))

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _listen(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "message":
            subscription = self._subscriptions.get(channel)
            if subscription is not None:
                subscription.push(message["data"])
        elif kind == "subscribe":
            confirmation = self._confirmations.pop(channel, None)
            if confirmation is not None and not confirmation.done():
                confirmation.set_result(None)

    async def subscribe(self, channel: str) -> Subscription:
        """Subscribe and return once Redis has confirmed, so every later publish reaches us."""
        assert self._pubsub is not None, "StreamHub.start() was not called"
        key = channel.encode()
        subscription = Subscription(key, limit=self._buffer_limit)
        confirmation = asyncio.get_running_loop().create_future()
        self._subscriptions[key] = subscription
        self._confirmations[key] = confirmation
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(confirmation, SUBSCRIBE_TIMEOUT)
        except BaseException:
            await self.unsubscribe(subscription)
            raise
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription.channel, None)
        self._confirmations.pop(subscription.channel, None)
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(subscription.channel.decode())


def sse_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


SSE_DONE = sse_data(b"[DONE]")


class Relay:
    """An accepted request whose first content event has arrived; relays the rest."""

    def __init__(self, hub: StreamHub, subscription: Subscription, first: StreamEvent, *, idle_timeout: float):
        self._hub = hub
        self._subscription = subscription
        self.first = first
        self._idle_timeout = idle_timeout

    async def close(self) -> None:
        await self._hub.unsubscribe(self._subscription)

    async def sse(self) -> AsyncIterator[bytes]:
        """The SSE body: each chunk as it arrives, an in-band error if one comes, then ``[DONE]``."""
        try:
            event = self.first
            while event.kind == EventKind.CHUNK:
                yield sse_data(event.data)
                event = await self._next()
            if event.kind == EventKind.ERROR:
                yield sse_data(event.data)
            yield SSE_DONE
        finally:
            await self.close()

    async def _next(self) -> StreamEvent:
        try:
            return await self._subscription.next_event(self._idle_timeout)
        except TimeoutError:
            silence = UpstreamTimeout(f"No data for {self._idle_timeout:g} s; the stream was closed.")
            return StreamEvent(EventKind.ERROR, silence.status_code, silence.to_json())
        except BodhiError as exc:
            return StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json())


async def first_content_event(subscription: Subscription, *, idle_timeout: float, received: StreamEvent) -> StreamEvent:
    """The first event after STARTED (``received`` if it is already one); an error there becomes an exception,
    so the client gets a plain error response with the right status instead of a stream."""
    event = received
    if event.kind == EventKind.STARTED:
        try:
            event = await subscription.next_event(idle_timeout)
        except TimeoutError:
            raise UpstreamTimeout(f"No answer within {idle_timeout:g} s.") from None
    if event.kind == EventKind.ERROR:
        raise RelayedError(event.status, event.data)
    return event
