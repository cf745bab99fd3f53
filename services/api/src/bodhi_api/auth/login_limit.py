"""Limits on failed logins, in Redis (shared by every replica): per client address, and per username, apart.

- Per client address, a window: after ``MAX_CLIENT_FAILURES`` failures in ``WINDOW_S``, the address gets 429 until
  the window ends. This stops one address guessing across many usernames.
- Per username, a slow-down rather than a lock-out: after ``FREE_USER_FAILURES`` failures, each further attempt
  must come some time after the last failure, ``USER_DELAYS_S`` (doubling from 1 s, then 30 s at most). A guesser
  gets a couple of tries a minute per username however many addresses it has, while the real user, from any
  address, gets in after at most that short wait. A lock-out would let anyone keep them out by failing on purpose.

Both are checked and counted in one script *before* the password is checked, so a burst of concurrent attempts
cannot slip past while the first ones are being verified. A refused attempt changes nothing: otherwise a guesser
hammering a username would keep pushing the real user's wait out. A successful login takes its attempt back from
its address and clears its username's failures. Keys hold SHA-256 digests, never a raw username or address, so
whatever a client sends a key stays small and a Redis dump names nobody.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from bodhi_api.http_errors import TooManyRequests
from bodhi_shared.redis_keys import RedisKeys

WINDOW_S = 15 * 60
MAX_CLIENT_FAILURES = 50
FREE_USER_FAILURES = 5
# The wait after the last failure once a username has FREE_USER_FAILURES, FREE_USER_FAILURES + 1, ... failures.
USER_DELAYS_S = (1, 2, 4, 8, 16, 30)

# KEYS: the client's failure count, the username's hash {n: failures, last: unix time of the last}.
# ARGV: MAX_CLIENT_FAILURES, WINDOW_S, FREE_USER_FAILURES, *USER_DELAYS_S.
# Returns {0, 0} when the attempt is counted, else {1 (address) or 2 (username), seconds to wait}.
_RESERVE = """
local client_failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if client_failures >= tonumber(ARGV[1]) then
    return {1, redis.call('TTL', KEYS[1])}
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local user = redis.call('HMGET', KEYS[2], 'n', 'last')
local failures = tonumber(user[1] or '0')
local beyond = failures - tonumber(ARGV[3])
if beyond >= 0 then
    local wait = tonumber(user[2] or '0') + tonumber(ARGV[math.min(4 + beyond, #ARGV)]) - now
    if wait > 0 then
        -- 'last' went through tostring(), which keeps 14 digits and may round it up a little: without the
        -- millisecond of slack, a 1 s wait could be announced as 2 s.
        return {2, math.ceil(wait - 0.001)}
    end
end
redis.call('SET', KEYS[1], 0, 'EX', ARGV[2], 'NX')
redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], 'n', failures + 1, 'last', tostring(now))
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {0, 0}
"""

# KEYS: as above. A window that ended meanwhile is not recreated (a bare DECR would leave -1 without expiry).
_CLEAR = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('DECR', KEYS[1])
end
redis.call('DEL', KEYS[2])
"""

_REFUSALS = {
    1: "Too many failed logins from this address; try again in {} s.",
    2: "Too many failed logins for this user; try again in {} s.",
}


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def limit_keys(keys: RedisKeys, *, username: str, client: str) -> tuple[str, str]:
    """The Redis keys of a login attempt's address and username."""
    return keys.login_client_failures(_digest(client)), keys.login_user_failures(_digest(username.strip().lower()))


async def reserve_login_attempt(redis: Redis, keys: RedisKeys, *, username: str, client: str) -> None:
    """Count one login attempt as failed until it succeeds; raise TooManyRequests if either limit refuses it."""
    limited, wait = await redis.eval(  # type: ignore[misc]  # redis-py types mix sync and async
        _RESERVE,
        2,
        *limit_keys(keys, username=username, client=client),
        *(str(n) for n in (MAX_CLIENT_FAILURES, WINDOW_S, FREE_USER_FAILURES, *USER_DELAYS_S)),
    )
    if int(limited):
        retry_after = max(1, int(wait))
        raise TooManyRequests(_REFUSALS[int(limited)].format(retry_after), retry_after_s=retry_after)


async def clear_login_failures(redis: Redis, keys: RedisKeys, *, username: str, client: str) -> None:
    """After a successful login: take its attempt back from its address, forget its username's failures."""
    await redis.eval(_CLEAR, 2, *limit_keys(keys, username=username, client=client))  # type: ignore[misc]  # as above
