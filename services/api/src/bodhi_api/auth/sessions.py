"""Browser sessions in Redis, so every API replica accepts them; ended per user on role change or delete.

The cookie holds a random session id; Redis keys hold only its SHA-256, so a Redis dump reveals no session.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from redis.asyncio import Redis

from bodhi_shared.redis_keys import RedisKeys

COOKIE_NAME = "bodhi_session"
SESSION_TTL_S = 7 * 24 * 3600


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def start_session(redis: Redis, keys: RedisKeys, *, user_id: uuid.UUID) -> str:
    session_id = secrets.token_urlsafe(32)
    digest = _digest(session_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.session(digest), str(user_id), ex=SESSION_TTL_S)
        pipe.sadd(keys.user_sessions(str(user_id)), digest)
        pipe.expire(keys.user_sessions(str(user_id)), SESSION_TTL_S)
        await pipe.execute()
    return session_id


async def session_user_id(redis: Redis, keys: RedisKeys, session_id: str) -> uuid.UUID | None:
    raw = await redis.get(keys.session(_digest(session_id)))
    if raw is None:
        return None
    return uuid.UUID(raw.decode() if isinstance(raw, bytes) else str(raw))


async def end_session(redis: Redis, keys: RedisKeys, session_id: str) -> None:
    digest = _digest(session_id)
    user_id = await redis.getdel(keys.session(digest))
    if user_id is not None:
        index = keys.user_sessions(user_id.decode() if isinstance(user_id, bytes) else user_id)
        await redis.srem(index, digest)  # type: ignore[misc]  # redis-py types mix sync and async


async def end_user_sessions(redis: Redis, keys: RedisKeys, user_id: uuid.UUID) -> None:
    index = keys.user_sessions(str(user_id))
    digests = await redis.smembers(index)  # type: ignore[misc]  # redis-py types mix sync and async
    async with redis.pipeline(transaction=True) as pipe:
        for digest in digests:
            pipe.delete(keys.session(digest.decode() if isinstance(digest, bytes) else digest))
        pipe.delete(index)
        await pipe.execute()
