"""The Postgres connection pool."""

import asyncpg


async def create_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size)
    return pool
