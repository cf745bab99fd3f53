"""Worker heartbeats in Redis: workers announce themselves, the API counts the live ones.

A local worker also describes its slots (the jobs it can run at once, per alias) in its ``RedisKeys.worker_info``
hash, refreshed with each beat (``slots_fields``): ``slots_in_use`` and ``slots_free`` in all, and ``slots``, JSON
``{alias: {"in_use": n, "free": m}}``. ``live_slots`` adds them up over the live workers.
"""

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping

from redis.asyncio import Redis

from bodhi_shared.redis_keys import RedisKeys

log = logging.getLogger(__name__)


def new_worker_id(kind: str) -> str:
    return f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def beat(redis: Redis, keys: RedisKeys, *, kind: str, worker_id: str, queue: str, ttl: float) -> None:
    """Record one heartbeat: the worker's score in its kind's set, and its description."""
    info_key = keys.worker_info(worker_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.workers(kind), {worker_id: time.time()})
        pipe.hset(info_key, mapping={"kind": kind, "queue": queue, "host": socket.gethostname(), "pid": os.getpid()})
        pipe.pexpire(info_key, int(ttl * 1000))
        await pipe.execute()


@contextlib.asynccontextmanager
async def heartbeating(
    redis: Redis, keys: RedisKeys, *, kind: str, worker_id: str, queue: str, interval: float, ttl: float
) -> AsyncIterator[None]:
    """Beat every ``interval`` seconds while the block runs; leave the set cleanly at the end."""

    async def loop() -> None:
        failing = False
        while True:
            try:
                await beat(redis, keys, kind=kind, worker_id=worker_id, queue=queue, ttl=ttl)
            except Exception as exc:  # a missed beat must not kill the worker; the next one may succeed
                if not failing:  # once per outage, not once a second
                    log.warning("heartbeat of %s failed (%s: %s); retrying", worker_id, type(exc).__name__, exc)
                failing = True
            else:
                if failing:
                    log.warning("heartbeat of %s beats again", worker_id)
                failing = False
            await asyncio.sleep(interval)

    await beat(redis, keys, kind=kind, worker_id=worker_id, queue=queue, ttl=ttl)
    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.zrem(keys.workers(kind), worker_id)
        await redis.delete(keys.worker_info(worker_id))


async def live_workers(redis: Redis, keys: RedisKeys, *, kind: str, ttl: float) -> list[str]:
    """Ids of the workers of ``kind`` whose last heartbeat is younger than ``ttl``; prunes the dead."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(keys.workers(kind), "-inf", now - ttl * 4)
        pipe.zrangebyscore(keys.workers(kind), now - ttl, "+inf")
        _, ids = await pipe.execute()
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


async def has_live_member(redis: Redis, key: str, *, ttl: float) -> bool:
    """Whether the sorted set ``key`` (worker ids scored by last beat) holds one that beat within ``ttl``."""
    count: int = await redis.zcount(key, time.time() - ttl, "+inf")
    return count > 0


async def wait_for_live_member(redis: Redis, key: str, *, ttl: float, within: float, every: float = 0.05) -> bool:
    """Poll ``key`` until it holds a live member (True) or ``within`` seconds have passed (False).

    Polled rather than signalled: it runs only while a request waits for a worker to start serving a new alias,
    a rare moment of a few seconds, where one ZCOUNT each ``every`` seconds costs Redis nothing worth a channel.
    """
    deadline = time.monotonic() + within
    while True:
        if await has_live_member(redis, key, ttl=ttl):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(every, left))


SLOTS_FIELD = "slots"
IN_USE_FIELD = "slots_in_use"
FREE_FIELD = "slots_free"


def slots_fields(slots: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """A worker's description fields for its slots, from (in use, free) per alias."""
    return {
        SLOTS_FIELD: json.dumps({alias: {"in_use": used, "free": free} for alias, (used, free) in slots.items()}),
        IN_USE_FIELD: str(sum(used for used, _ in slots.values())),
        FREE_FIELD: str(sum(free for _, free in slots.values())),
    }


async def live_slots(redis: Redis, keys: RedisKeys, *, kind: str, ttl: float) -> dict[str, int]:
    """Slots in use and free over the live workers of ``kind`` (those that describe none count for nothing)."""
    ids = await live_workers(redis, keys, kind=kind, ttl=ttl)
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            pipe.hmget(keys.worker_info(worker_id), [IN_USE_FIELD, FREE_FIELD])
        rows = await pipe.execute() if ids else []
    totals = {"in_use": 0, "free": 0}
    for used, free in rows:
        totals["in_use"] += _count(used)
        totals["free"] += _count(free)
    return totals


def _count(value: object) -> int:
    """A count as a worker wrote it (bytes, a string or a JSON number); 0 when it is none."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return max(0, value) if isinstance(value, int) and not isinstance(value, bool) else 0
