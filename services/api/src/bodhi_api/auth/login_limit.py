"""Rate limit on failed logins, per username and client address, in Redis (shared by every replica)."""

from __future__ import annotations

from redis.asyncio import Redis

from bodhi_api.http_errors import TooManyRequests
from bodhi_shared.redis_keys import RedisKeys

MAX_FAILURES = 10
WINDOW_S = 15 * 60


async def check_login_allowed(redis: Redis, keys: RedisKeys, *, username: str, client: str) -> None:
    key = keys.login_failures(username.strip().lower(), client)
    failures = await redis.get(key)
    if failures is not None and int(failures) >= MAX_FAILURES:
        retry_after = max(1, int(await redis.ttl(key)))
        raise TooManyRequests(
            f"Too many failed logins for this user from this address; try again in {retry_after} s.",
            retry_after_s=retry_after,
        )


async def record_login_failure(redis: Redis, keys: RedisKeys, *, username: str, client: str) -> None:
    key = keys.login_failures(username.strip().lower(), client)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, WINDOW_S, nx=True)
        await pipe.execute()


async def clear_login_failures(redis: Redis, keys: RedisKeys, *, username: str, client: str) -> None:
    await redis.delete(keys.login_failures(username.strip().lower(), client))
