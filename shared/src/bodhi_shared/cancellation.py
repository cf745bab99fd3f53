"""Stopping jobs whose client went away: the API publishes the request id on the cancel channel.

Each worker listens on that one channel and cancels the provider call of a job it runs, which closes the
upstream connection. The job itself then ends normally, so arq never re-runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis

log = logging.getLogger(__name__)

T = TypeVar("T")


class JobCancelled(Exception):
    """The client of this job went away."""


class CancelRegistry:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._channel)
        self._listener = asyncio.create_task(self._listen(pubsub))

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen(self, pubsub: Any) -> None:
        try:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    self.cancel(message["data"].decode())
        finally:
            await pubsub.aclose()

    def cancel(self, request_id: str) -> None:
        task = self._running.get(request_id)
        if task is not None and not task.done():
            log.info("request %s cancelled: its client went away", request_id)
            task.cancel()

    async def run(self, request_id: str, work: Awaitable[T]) -> T:
        """Run ``work`` as a task that a cancel message can stop; ``JobCancelled`` if one did."""
        task: asyncio.Task[T] = asyncio.ensure_future(work)
        self._running[request_id] = task
        try:
            await asyncio.wait({task})
        finally:
            self._running.pop(request_id, None)
            if not task.done():  # we ourselves were cancelled (worker shutdown): take the call down too
                task.cancel()
        if task.cancelled():
            raise JobCancelled(request_id)
        return task.result()
