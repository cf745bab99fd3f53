"""What an API replica holds for its lifetime: built in the lifespan, reached through ``deps``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from arq import ArqRedis

from bodhi_api.api_models.sealing import rebind_legacy_keys
from bodhi_api.auth.token_cache import TokenCache
from bodhi_api.local_aliases.store import add_discovered_aliases, publish_catalogue
from bodhi_api.metrics import Metrics
from bodhi_api.model_routing import RouteCache
from bodhi_api.settings import ApiSettings
from bodhi_api.stream_hub import StreamHub
from bodhi_api.usage import UsageRecorder
from bodhi_shared.migrate import migrate
from bodhi_shared.postgres import create_pool
from bodhi_shared.queue import create_queue_pool
from bodhi_shared.rate_limits import Charges
from bodhi_shared.redis_keys import RedisKeys
from bodhi_shared.worker_keys import WorkerKeyMissing

log = logging.getLogger(__name__)

# What an ``api_control`` message says changed.
CREDENTIALS = b"credentials"
ROUTES = b"routes"


def _clear_cache(topic: bytes, token_cache: TokenCache, route_cache: RouteCache) -> None:
    if topic == CREDENTIALS:
        token_cache.clear()
    elif topic == ROUTES:
        route_cache.clear()


@dataclass(frozen=True, slots=True)
class Resources:
    settings: ApiSettings
    keys: RedisKeys
    db: asyncpg.Pool
    redis: ArqRedis  # one client for queueing, publishing and heartbeat reads
    hub: StreamHub
    usage: UsageRecorder
    metrics: Metrics
    token_cache: TokenCache
    route_cache: RouteCache
    _background: set[asyncio.Task[Any]] = field(default_factory=set)
    # Tokens used by finished requests, charged to tokens-per-minute limits and budgets in batches.
    charges: Charges = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "charges", Charges(self.redis, self.spawn))

    async def credentials_changed(self) -> None:
        """A token or a user's role changed: every replica drops its cached token checks now."""
        self.token_cache.clear()
        await self.redis.publish(self.keys.api_control, CREDENTIALS)

    async def routes_changed(self) -> None:
        """An API model or a local alias changed: every replica drops its cached routes now."""
        self.route_cache.clear()
        await self.redis.publish(self.keys.api_control, ROUTES)

    def redis_came_back(self) -> None:
        """The replica's subscription is back after an outage. Redis may have restarted empty, so the local
        workers' catalogue is written again, and cached routes and tokens are dropped (change messages sent
        meanwhile were lost)."""
        self.token_cache.clear()
        self.route_cache.clear()
        self.spawn(publish_catalogue(self.db, self.redis, self.keys))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run bookkeeping off the request path (e.g. ``last_used_at``); failures are logged, not raised. The
        task may be awaited (a stored response, before its stream ends); it runs on if the awaiter is cancelled."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task failed: %r", task.exception())

    async def drain(self) -> None:
        """Wait for the bookkeeping under way (``spawn``), pending charges included."""
        await asyncio.gather(*self._background, return_exceptions=True)


@contextlib.asynccontextmanager
async def open_resources(settings: ApiSettings) -> AsyncIterator[Resources]:
    try:
        public_key = settings.load_worker_public_key()  # fail at start, not at the first save, when it is missing
    except WorkerKeyMissing as exc:
        raise SystemExit(exc.message) from None
    db = await create_pool(settings.require_database_url(), max_size=settings.database_pool_size)
    try:
        if settings.migrate_on_start:
            async with db.acquire() as conn:
                await migrate(conn)
        await rebind_legacy_keys(db, public_key)  # keys stored before they were bound to their base URLs
        redis = await create_queue_pool(settings.require_redis_url())
        keys = settings.redis_keys
        token_cache, route_cache = TokenCache(), RouteCache()
        hub = StreamHub(
            redis,
            replica_channel=keys.replica_channel(uuid.uuid4().hex),
            control_channel=keys.api_control,
            on_control=lambda topic: _clear_cache(topic, token_cache, route_cache),
            buffer_limit=settings.stream_buffer_limit,
            buffer_bytes=settings.stream_buffer_bytes,
        )
        await hub.start()
        await add_discovered_aliases(db)
        await publish_catalogue(db, redis, keys)  # local workers read aliases from Redis, never from Postgres
        usage = UsageRecorder(db)
        await usage.start()
        resources = Resources(
            settings=settings,
            keys=keys,
            db=db,
            redis=redis,
            hub=hub,
            usage=usage,
            metrics=Metrics(),
            token_cache=token_cache,
            route_cache=route_cache,
        )
        hub.on_reconnect = resources.redis_came_back
        try:
            yield resources
        finally:
            await resources.drain()
            with contextlib.suppress(Exception):  # Redis away at shutdown: those charges are lost, as before
                await resources.charges.flush()
            await usage.stop()
            await hub.stop()
            await redis.aclose()
    finally:
        await db.close()
