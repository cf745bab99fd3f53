"""Local aliases in Postgres (and their served id), mirrored into the Redis catalogue local workers read."""

from __future__ import annotations

import asyncio
import json
import logging

import asyncpg
from redis.asyncio import Redis

from bodhi_api.local_aliases.gguf_files import discover_hf_models
from bodhi_api.local_aliases.schemas import AliasFields
from bodhi_api.served_ids import lock_served_ids, refuse_clash
from bodhi_shared.redis_keys import RedisKeys

log = logging.getLogger(__name__)

_COLUMNS = "alias, path, repo, filename, context_params, request_params, source, created_at, updated_at"


async def list_aliases(db: asyncpg.Pool) -> list[asyncpg.Record]:
    # Case-insensitive, as people read lists; the exact name breaks ties (`Tiny` and `tiny` may both exist).
    return list(await db.fetch(f"SELECT {_COLUMNS} FROM local_aliases ORDER BY lower(alias), alias"))  # noqa: S608


async def get_alias(db: asyncpg.Pool, alias: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM local_aliases WHERE alias = $1",  # noqa: S608 -- a constant column list
        alias,
    )
    return row


async def save_alias(db: asyncpg.Pool, fields: AliasFields, *, source: str = "user", create: bool) -> bool:
    """Insert (``create``) or update an alias and claim its served id; False when updating a missing one."""
    async with db.acquire() as conn, conn.transaction():
        await lock_served_ids(conn)
        if create:
            await refuse_clash(conn, [fields.alias], param="alias")
        values = (
            fields.alias,
            str(fields.path),
            fields.repo,
            fields.filename,
            fields.context_params,
            fields.request_params,
        )
        if create:
            await conn.execute(
                "INSERT INTO local_aliases (alias, path, repo, filename, context_params, request_params, source)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                *values,
                source,
            )
            await conn.execute("INSERT INTO served_models (model_id, alias) VALUES ($1, $1)", fields.alias)
            return True
        result = await conn.execute(
            "UPDATE local_aliases SET path = $2, repo = $3, filename = $4, context_params = $5, request_params = $6,"
            " source = 'user', updated_at = now() WHERE alias = $1",
            *values,
        )
        return bool(result.endswith(" 1"))


async def delete_alias(db: asyncpg.Pool, alias: str) -> bool:
    result: str = await db.execute("DELETE FROM local_aliases WHERE alias = $1", alias)  # served id cascades
    return result.endswith(" 1")


async def add_discovered_aliases(db: asyncpg.Pool) -> int:
    """Automatic ``{owner}/{repo}:{QUANT}`` aliases for the HuggingFace cache; names already served are skipped.

    Returns how many were added."""
    added = 0
    # It walks the cache's folders: in a thread, since the alias list calls it on a request (and start-up too).
    for found in await asyncio.to_thread(discover_hf_models):
        async with db.acquire() as conn, conn.transaction():
            await lock_served_ids(conn)
            if await conn.fetchval("SELECT 1 FROM served_models WHERE model_id = $1", found.alias):
                continue
            await conn.execute(
                "INSERT INTO local_aliases (alias, path, repo, filename, source) VALUES ($1, $2, $3, $4, 'auto')",
                found.alias,
                str(found.path),
                found.repo,
                found.filename,
            )
            await conn.execute("INSERT INTO served_models (model_id, alias) VALUES ($1, $1)", found.alias)
            log.info("discovered %s at %s", found.alias, found.path)
            added += 1
    return added


def catalogue_entry(row: asyncpg.Record) -> str:
    return json.dumps({"alias": row["alias"], "path": row["path"], "context_params": row["context_params"]})


async def publish_catalogue(db: asyncpg.Pool, redis: Redis, keys: RedisKeys) -> None:
    """Replace the Redis catalogue with the aliases in Postgres, atomically."""
    rows = await list_aliases(db)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.local_aliases)
        if rows:
            pipe.hset(keys.local_aliases, mapping={r["alias"]: catalogue_entry(r) for r in rows})
        await pipe.execute()
