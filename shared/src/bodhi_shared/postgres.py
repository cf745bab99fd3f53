"""The Postgres connection pool."""

import json

import asyncpg


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSONB columns as Python values (asyncpg's default is text)."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, init=init_connection)
    return pool
