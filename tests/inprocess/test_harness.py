"""The in-process harness itself: each test's schema and Redis prefix are its own, and blocking calls fail."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
from argon2 import PasswordHasher
from blockbuster import BlockingError
from fastapi import FastAPI

from bodhi_api.auth.roles import Role
from bodhi_shared.migrate import available_migrations
from tests.inprocess.conftest import AppFactory
from tests.inprocess.harness import Account, InProcessApp, keys_under, schema_dsn

PROBE_USER = "isolation-probe"


def test_schema_dsn_adds_the_search_path_and_keeps_the_rest() -> None:
    assert schema_dsn("postgresql://u@h:5/db", "s_1") == "postgresql://u@h:5/db?search_path=s_1"
    assert schema_dsn("postgresql://u@h/db?sslmode=disable", "s_1") == (
        "postgresql://u@h/db?sslmode=disable&search_path=s_1"
    )


async def test_migrations_and_the_app_pool_use_the_test_schema(bodhi: InProcessApp, database_url: str) -> None:
    tables_query = "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
    conn = await asyncpg.connect(database_url)
    try:
        tables = {r["table_name"] for r in await conn.fetch(tables_query, bodhi.schema)}
        applied = {r["version"] for r in await conn.fetch(f'SELECT version FROM "{bodhi.schema}".schema_migrations')}
    finally:
        await conn.close()
    assert {"users", "api_tokens", "api_models", "local_aliases", "served_models", "usage_records"} <= tables
    assert applied == {version for version, _ in available_migrations()}

    # Every connection of the pool, however often reused (asyncpg resets a connection on release).
    for _ in range(3):
        async with bodhi.db.acquire() as pooled:
            assert await pooled.fetchval("SELECT current_schema()") == bodhi.schema

    # What the app writes lands in the test's schema, and nowhere else.
    account = await bodhi.account(Role.ADMIN)
    created = await account.client.post("/bodhi/v1/tokens", json={"name": "schema-probe"})
    assert created.status_code == 201, created.text
    conn = await asyncpg.connect(database_url)
    try:
        in_schema = await conn.fetchval(
            f'SELECT count(*) FROM "{bodhi.schema}".api_tokens WHERE name = $1', "schema-probe"
        )
        in_public = await conn.fetchval("SELECT count(*) FROM public.api_tokens WHERE name = $1", "schema-probe")
    finally:
        await conn.close()
    assert (in_schema, in_public) == (1, 0)


@pytest.mark.parametrize("run", ["first", "second"])
async def test_each_test_sees_only_its_own_rows(bodhi: InProcessApp, run: str) -> None:
    """Run twice, in either order: the user made by the other run is not there (nor would the name be taken)."""
    await bodhi.create_user(Role.USER, username=PROBE_USER)
    assert [r["username"] for r in await bodhi.db.fetch("SELECT username FROM users")] == [PROBE_USER]
    assert await bodhi.redis_keys() == []  # nothing in Redis but what this test writes
    account = await bodhi.account(Role.MANAGER)
    listed = await (await bodhi.session_client(account.user)).get("/bodhi/v1/users")
    assert sorted(u["username"] for u in listed.json()["data"]) == sorted([PROBE_USER, account.username])


async def test_two_apps_side_by_side_do_not_see_each_other(
    app_factory: AppFactory, database_url: str, redis_url: str
) -> None:
    async with app_factory() as one, app_factory() as two:
        assert one.schema != two.schema
        assert one.redis_prefix != two.redis_prefix
        first = await one.account(Role.ADMIN)
        second = await two.account(Role.ADMIN)

        # A token of one app is unknown to the other: different rows, different tables.
        assert (await first.client.get("/bodhi/v1/user")).status_code == 200
        foreign = await two.client(token=first.token).get("/bodhi/v1/user")
        assert foreign.status_code == 401, foreign.text
        # So is a session: the other app's prefix has no such key.
        session = await one.session_client(first.user)
        assert (await session.get("/bodhi/v1/user")).status_code == 200
        stolen = two.client()
        stolen.cookies = session.cookies
        assert (await stolen.get("/bodhi/v1/user")).status_code == 401
        assert any(":session:" in key for key in await one.redis_keys())
        assert not any(":session:" in key for key in await two.redis_keys())
        assert second.username not in {u["username"] for u in await one.db.fetch("SELECT username FROM users")}
        kept_schema, kept_prefix = one.schema, one.redis_prefix

    # Closed: the schema is dropped and the prefix's keys deleted.
    conn = await asyncpg.connect(database_url)
    try:
        left = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", kept_schema)
    finally:
        await conn.close()
    assert left == 0
    assert await keys_under(redis_url, kept_prefix) == []


async def test_a_blocking_call_in_a_test_fails() -> None:
    with pytest.raises(BlockingError, match="sleep"):
        time.sleep(0.001)  # noqa: ASYNC251 -- the point of the test
    with pytest.raises(BlockingError, match=r"os\.stat"):
        Path("/").stat()  # noqa: ASYNC240
    with pytest.raises(BlockingError, match=r"PasswordHasher\.hash"):
        PasswordHasher().hash("argon2 is CPU-bound")
    assert await asyncio.to_thread(Path("/").exists)  # off the loop: fine


async def test_a_blocking_call_on_the_request_path_fails_the_request(bodhi: InProcessApp) -> None:
    app: FastAPI = bodhi.app

    @app.get("/blocking-probe")
    async def probe() -> dict[str, bool]:
        return {"exists": Path("/").exists()}  # noqa: ASYNC240 -- what the harness must catch

    with pytest.raises(BlockingError, match=r"os\.stat"):
        await bodhi.client().get("/blocking-probe")


async def test_accounts_have_the_roles_and_scopes_asked_for(bodhi: InProcessApp, admin: Account) -> None:
    me = await admin.client.get("/bodhi/v1/user")
    # A token acts with the lower of its scope and its owner's role: an admin's token is a power_user at most.
    assert me.json() == {"id": str(admin.user.id), "username": admin.username, "role": "power_user"}
    browser = await bodhi.session_client(admin.user)
    assert (await browser.get("/bodhi/v1/user")).json()["role"] == "admin"
