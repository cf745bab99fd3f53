"""Stopping jobs whose client went away: the API publishes the request id on the cancel channel.

Each worker listens on that one channel and cancels the provider call of a job it runs, which closes the
upstream connection. The job itself then ends normally, so arq never re-runs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis

from bodhi_shared.pubsub_listener import PubSubListener

log = logging.getLogger(__name__)

T = TypeVar("T")


class JobCancelled(Exception):
    """The client of this job went away."""


class CancelRegistry:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._running: dict[str, asyncio.Task[Any]] = {}
        # Supervised: after a Redis outage it subscribes again (cancels published meanwhile are lost; a job whose
        # client left then runs to its end, and its events reach nobody).
        self.listener = PubSubListener(
            redis, [channel], lambda _channel, data: self.cancel(data.decode()), name="cancel listener"
        )

    async def start(self) -> None:
        await self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()

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
