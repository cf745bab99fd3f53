from __future__ import annotations

import asyncio

import asyncpg

from bodhi_shared.migrate import available_migrations, migrate
from tests.support.backing import create_database, drop_database, new_name


async def test_concurrent_migrations_apply_each_version_exactly_once(postgres_server_url: str) -> None:
    name = new_name("bodhi_test_race")
    url = await create_database(postgres_server_url, name)
    conns = [await asyncpg.connect(url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
        await drop_database(postgres_server_url, name)

    everything = [v for v, _ in available_migrations()]
    assert sorted(v for batch in applied for v in batch) == everything
    assert sum(1 for batch in applied if batch) == 1


async def test_a_fresh_database_gets_only_the_tables_the_code_uses(postgres_server_url: str) -> None:
    """The foundation's plain-text ``temporary_upstreams`` table is squashed away: no migration creates it."""
    name = new_name("bodhi_test_tables")
    url = await create_database(postgres_server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {r["tablename"] for r in rows}
    finally:
        await conn.close()
        await drop_database(postgres_server_url, name)

    assert "temporary_upstreams" not in tables
    assert {"schema_migrations", "users", "api_models", "served_models", "usage_records", "local_aliases"} <= tables


async def test_a_database_migrated_before_the_squash_migrates_on(postgres_server_url: str) -> None:
    """A database that recorded the squashed ``0001_temporary_upstreams`` (and later ones) needs nothing more."""
    name = new_name("bodhi_test_squash")
    url = await create_database(postgres_server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO schema_migrations (version) VALUES ('0001_temporary_upstreams')")
        assert await migrate(conn) == []
    finally:
        await conn.close()
        await drop_database(postgres_server_url, name)
