"""Versioned schema migrations: ``migrations/NNNN_name.sql`` applied in order, each once.

Safe when several API replicas start together: a transaction-scoped advisory lock serialises them, and the
ones that wait find the migrations already recorded.
"""

import logging
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# Any constant works as long as every Bodhi process uses the same one.
MIGRATION_LOCK_ID = 0x0B0D41


def available_migrations() -> list[tuple[str, str]]:
    """(version, sql) pairs in version order, read from the package's ``migrations`` folder."""
    folder = resources.files("bodhi_shared.migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every migration not applied yet; return the versions applied by this call."""
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in available_migrations():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
            log.info("applied migration %s", version)
    return applied_now


async def migrate_dsn(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
