"""The catalogue of local aliases the API keeps in Redis: ``RedisKeys.local_aliases``, alias -> JSON LocalModel."""

from __future__ import annotations

import json
import logging
from typing import Any

from redis.asyncio import Redis

from bodhi_shared.contract import LocalModel
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


async def wanted_aliases(redis: Redis, keys: RedisKeys, named: list[str] | None) -> list[str]:
    """The aliases to serve: those named by ``--models``, else every alias in the catalogue."""
    if named is not None:
        return named
    return sorted(await read_catalogue(redis, keys))
