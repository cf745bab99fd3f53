"""What an API replica holds for its lifetime: built in the lifespan, reached through ``deps``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from arq import ArqRedis

from bodhi_api.settings import ApiSettings
from bodhi_api.token_stream import StreamHub
from bodhi_shared.migrate import migrate
from bodhi_shared.postgres import create_pool
from bodhi_shared.queue import create_queue_pool
from bodhi_shared.redis_keys import RedisKeys


@dataclass(frozen=True, slots=True)
class Resources:
    settings: ApiSettings
    keys: RedisKeys
    db: asyncpg.Pool
    redis: ArqRedis  # one client for queueing, publishing and heartbeat reads
    hub: StreamHub


@contextlib.asynccontextmanager
async def open_resources(settings: ApiSettings) -> AsyncIterator[Resources]:
    db = await create_pool(settings.require_database_url(), max_size=settings.database_pool_size)
    try:
        if settings.migrate_on_start:
            async with db.acquire() as conn:
                await migrate(conn)
        redis = await create_queue_pool(settings.require_redis_url())
        keys = settings.redis_keys
        hub = StreamHub(redis, idle_channel=f"{keys.namespace}:api:idle", buffer_limit=settings.stream_buffer_limit)
        await hub.start()
        try:
            yield Resources(settings=settings, keys=keys, db=db, redis=redis, hub=hub)
        finally:
            await hub.stop()
            await redis.aclose()
    finally:
        await db.close()
