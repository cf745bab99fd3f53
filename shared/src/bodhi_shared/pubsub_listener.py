"""Long-lived Redis subscriptions that outlive their connection.

A pub/sub subscription lives on one connection: when it drops (Redis restarted, a network blip) the subscription
is gone with it, and a bare listener task dies unnoticed. ``PubSubListener`` owns one subscription for the life
of a process:

    start()      subscribe and wait for Redis to confirm (fails if Redis cannot be reached: a start-up error)
    listening    each message goes to ``on_message(channel, data)``; an exception there is logged, not fatal
    dropped      ``up`` turns False, the outage is logged, ``on_down()`` runs (messages published meanwhile are
                 lost, so a caller ends what waited on them)
    reconnect    with capped exponential backoff; re-subscribed and confirmed, ``up`` turns True, the recovery is
                 logged, ``on_up()`` runs
    stop()       ends it
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 5.0
FIRST_RETRY_S = 0.1
MAX_RETRY_S = 0.5  # a refused connection costs next to nothing: come back soon after Redis does

OnMessage = Callable[[str, bytes], None]


class PubSubListener:
    """One supervised subscription to ``channels``; ``name`` says which in logs and in ``/health``."""

    def __init__(
        self,
        redis: Redis,
        channels: Sequence[str],
        on_message: OnMessage,
        *,
        name: str,
        on_down: Callable[[], None] | None = None,
        on_up: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.up = False
        self._redis = redis
        self._channels = list(channels)
        self._on_message = on_message
        self._on_down = on_down
        self._on_up = on_up
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return "up" if self.up else "down"

    async def start(self) -> None:
        pubsub = await self._subscribe()
        self.up = True
        self._task = asyncio.create_task(self._run(pubsub), name=f"pubsub-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.up = False

    async def _subscribe(self) -> Any:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(*self._channels)
            expected = len(self._channels)
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                while expected:
                    message = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
                    if message is not None and message["type"] == "subscribe":
                        expected -= 1
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        return pubsub

    async def _run(self, pubsub: Any) -> None:
        try:
            while True:
                try:
                    await self._listen(pubsub)
                except Exception as exc:  # a dropped connection, whatever redis-py calls it
                    self._went_down(exc)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                pubsub = await self._reconnect()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _listen(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            channel = message["channel"]
            try:
                self._on_message(channel.decode() if isinstance(channel, bytes) else str(channel), message["data"])
            except Exception:
                log.exception("%s: a message could not be handled", self.name)
        raise ConnectionError("the subscription ended")  # listen() returns only once nothing is subscribed

    def _went_down(self, exc: Exception) -> None:
        self.up = False
        log.warning("%s: lost its Redis subscription (%s: %s); reconnecting", self.name, type(exc).__name__, exc)
        if self._on_down is not None:
            try:
                self._on_down()
            except Exception:
                log.exception("%s: ending what waited on the subscription failed", self.name)

    async def _reconnect(self) -> Any:
        lost_at, delay = time.monotonic(), FIRST_RETRY_S
        while True:
            await asyncio.sleep(delay)
            try:
                pubsub = await self._subscribe()
            except Exception as exc:
                log.debug("%s: still no Redis (%s)", self.name, exc)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            self.up = True
            log.warning("%s: subscribed again after %.1f s without Redis", self.name, time.monotonic() - lost_at)
            if self._on_up is not None:
                self._on_up()
            return pubsub
