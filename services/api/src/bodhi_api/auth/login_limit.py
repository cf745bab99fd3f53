"""Rate limit on failed logins, per username and client address, in Redis (shared by every replica).

Each attempt is counted *before* its password is checked (one atomic INCR), so a burst of concurrent attempts
cannot all slip past the limit while the first ones are still being verified. An attempt that fails stays
counted; a successful login clears the count.
"""

from __future__ import annotations

from redis.asyncio import Redis

from bodhi_api.http_errors import TooManyRequests
from bodhi_shared.redis_keys import RedisKeys

MAX_FAILURES = 10
WINDOW_S = 15 * 60


async def reserve_login_attempt(redis: Redis, keys: RedisKeys, *, username: str, client: str) -> None:
    """Count one login attempt; raise TooManyRequests if MAX_FAILURES attempts already failed in the window."""
    key = keys.login_failures(username.strip().lower(), client)
    async with redis.pipeline(transaction=True) as pipe:
        # SET NX EX starts the window once; EXPIRE's NX flag would need Redis 7 (the embedded one is 6.2).
        pipe.set(key, 0, ex=WINDOW_S, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, attempts, ttl = await pipe.execute()
    if int(attempts) > MAX_FAILURES:
        retry_after = max(1, int(ttl))
        raise TooManyRequests(
            f"Too many failed logins for this user from this address; try again in {retry_after} s.",
            retry_after_s=retry_after,
        )


async def clear_login_failures(redis: Redis, keys: RedisKeys, *, username: str, client: str) -> None:
    await redis.delete(keys.login_failures(username.strip().lower(), client))
