"""Publishing a job's events in order, without making the job wait for Redis.

The first event goes out at once; whatever is queued while a publish is in flight goes out next, consecutive
chunks merged into one CHUNK event and the rest sent in one pipelined round trip. A slow hop therefore costs
fewer, larger messages instead of an ever longer backlog, and the job never stalls on a round trip.

A publish that fails (Redis gone) loses the events for good: the client's replica has given up on them. The next
event the job emits then raises ``EventsUndeliverable``, so the job stops (and its provider call with it) instead
of paying for an answer nobody can receive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from redis.asyncio import Redis

from bodhi_shared.contract import EventKind, StreamEvent
from bodhi_shared.errors import ServiceUnavailable


class EventsUndeliverable(ServiceUnavailable):
    """The job's events can no longer be published (Redis unreachable)."""

    code = "events_undeliverable"


class EventPublisher:
    # Set while a job answers in an inbound format of its own (``bodhi_shared.translated_jobs``): each frame passed
    # to ``chunk`` becomes what it returns (nothing is queued for b"").
    translate: Callable[[bytes], bytes] | None

    def __init__(self, redis: Redis, channel: str, *, request_id: str) -> None:
        self._redis = redis
        self._channel = channel
        self._request_id = request_id
        self._pending: list[StreamEvent | bytes] = []  # events, or SSE frames to merge into CHUNK events
        self._sender: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self.translate = None

    def emit(self, event: StreamEvent) -> None:
        """Queue ``event`` behind everything queued before it; it is sent without waiting for the caller."""
        self._queue(event)

    def chunk(self, frame: bytes) -> None:
        """Queue one SSE frame; it is sent without waiting for the caller."""
        if self.translate is not None and not (frame := self.translate(frame)):
            return
        self._queue(frame)

    async def publish(self, event: StreamEvent) -> None:
        """Queue ``event`` and return once it, and everything before it, has been published."""
        self._queue(event)
        await self.flush()

    async def flush(self) -> None:
        while self._sender is not None and not self._sender.done():
            await self._sender
        if self._pending:  # queued after the sender's last look
            await self._send_pending()

    def abandon(self) -> None:
        if self._sender is not None:
            self._sender.cancel()

    def _queue(self, item: StreamEvent | bytes) -> None:
        if self._failed is not None:
            raise EventsUndeliverable(
                f"The events of request {self._request_id} could not be published ({type(self._failed).__name__})."
            ) from self._failed
        self._pending.append(item)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending())
            self._sender.add_done_callback(_seen)

    async def _send_pending(self) -> None:
        try:
            await self._send_all()
        except Exception as exc:
            self._failed = exc
            self._pending.clear()
            raise

    async def _send_all(self) -> None:
        while self._pending:
            items, self._pending = self._pending, []
            messages = _messages(items, self._request_id)
            if len(messages) == 1:
                await self._redis.publish(self._channel, messages[0])
                continue
            async with self._redis.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(self._channel, message)
                await pipe.execute()


def _seen(task: asyncio.Task[None]) -> None:
    """Mark a sender's failure as seen: it is raised again by the job's next emit, flush or publish."""
    if not task.cancelled():
        task.exception()


def _messages(items: list[StreamEvent | bytes], request_id: str) -> list[bytes]:
    messages: list[bytes] = []
    frames: list[bytes] = []
    for item in items:
        if isinstance(item, bytes):
            frames.append(item)
            continue
        if frames:
            messages.append(StreamEvent(EventKind.CHUNK, data=b"".join(frames), request_id=request_id).encode())
            frames = []
        messages.append(replace(item, request_id=request_id).encode())
    if frames:
        messages.append(StreamEvent(EventKind.CHUNK, data=b"".join(frames), request_id=request_id).encode())
    return messages
