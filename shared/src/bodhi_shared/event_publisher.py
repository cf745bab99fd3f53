"""Publishing a job's events, with chunks coalesced while a publish is in flight.

The first chunk goes out at once; chunks that arrive while Redis is answering are sent together in the next
CHUNK event. A slow hop therefore costs fewer, larger messages instead of an ever longer backlog.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from bodhi_shared.contract import EventKind, StreamEvent


class EventPublisher:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._frames: list[bytes] = []
        self._sender: asyncio.Task[None] | None = None

    async def publish(self, event: StreamEvent) -> None:
        """Publish ``event`` after every chunk queued before it."""
        await self.flush()
        await self._redis.publish(self._channel, event.encode())

    def chunk(self, frame: bytes) -> None:
        """Queue one SSE frame; it is sent without waiting for the caller."""
        self._frames.append(frame)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_frames())

    async def flush(self) -> None:
        if self._sender is not None:
            await self._sender
        if self._frames:  # queued after the sender's last look
            await self._send_frames()

    async def _send_frames(self) -> None:
        while self._frames:
            frames, self._frames = self._frames, []
            await self._redis.publish(self._channel, StreamEvent(EventKind.CHUNK, data=b"".join(frames)).encode())

    def abandon(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
