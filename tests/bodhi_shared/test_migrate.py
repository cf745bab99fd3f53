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
