"""The catalogue of local aliases the API keeps in Redis: ``RedisKeys.local_aliases``, alias -> JSON LocalModel.

The API publishes on ``RedisKeys.local_worker_control`` each time it rewrites the catalogue; ``CatalogueWatch``
turns that into an event, so a worker that follows the catalogue serves a new alias at once, not at its next
periodic read (which stays, as the safety net for a lost message).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis

from bodhi_shared.contract import LocalModel
from bodhi_shared.pubsub_listener import PubSubListener
from bodhi_shared.redis_keys import RedisKeys

log = logging.getLogger(__name__)


async def read_catalogue(redis: Redis, keys: RedisKeys) -> dict[str, LocalModel]:
    """Every well-formed entry of the catalogue; a malformed one is logged and left out."""
    raw: dict[Any, Any] = await redis.hgetall(keys.local_aliases)  # type: ignore[misc]
    catalogue: dict[str, LocalModel] = {}
    for name, value in raw.items():
        alias = name.decode() if isinstance(name, bytes) else str(name)
        model = parse_entry(alias, value)
        if model is not None:
            catalogue[alias] = model
    return catalogue


def parse_entry(alias: str, value: bytes | str) -> LocalModel | None:
    try:
        fields = json.loads(value)
        params = fields.get("context_params") or {}
        if not isinstance(fields["path"], str) or not isinstance(params, dict):
            raise TypeError("path must be a string and context_params an object")
        return LocalModel(alias=alias, path=fields["path"], context_params=params)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("catalogue entry %r ignored: %s", alias, exc)
        return None


def wanted_aliases(catalogue: dict[str, LocalModel], named: list[str] | None) -> list[str]:
    """The aliases to serve: those named by ``--models``, else every alias in the catalogue."""
    if named is not None:
        return named
    return sorted(catalogue)


class CatalogueWatch:
    """Sets ``changed`` whenever the API says it rewrote the catalogue, and after a Redis outage (changes made
    meanwhile were not heard)."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self.changed = asyncio.Event()
        self.listener = PubSubListener(
            redis, [channel], lambda _channel, _data: self.changed.set(), name="catalogue watch", on_up=self.changed.set
        )

    async def start(self) -> None:
        """Subscribe, and wait for Redis to confirm it: a change made after this returns is never missed."""
        await self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()
