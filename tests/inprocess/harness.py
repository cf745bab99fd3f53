"""The API app built in-process, on the run's real Postgres and Redis, with a schema and a Redis prefix of its own.

``open_app`` creates a Postgres schema in the run's test database, migrates it through a DSN whose
``search_path`` is that schema (asyncpg sends unknown DSN query parameters as server settings), builds the app
with ``create_app`` on that DSN and a fresh ``BODHI_REDIS_PREFIX``, runs its lifespan, and serves it through
httpx's ASGI transport. On the way out it drops the schema and deletes the prefix's keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import httpx
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from blockbuster import BlockBuster, BlockBusterFunction
from fastapi import FastAPI
from pydantic import SecretStr

from bodhi_api.app import create_app
from bodhi_api.auth.passwords import hash_password
from bodhi_api.auth.roles import Role, TokenScope
from bodhi_api.auth.sessions import COOKIE_NAME, start_session
from bodhi_api.auth.tokens import issue_token
from bodhi_api.auth.users import User
from bodhi_api.resources import Resources
from bodhi_api.settings import ApiSettings
from bodhi_shared.migrate import migrate_dsn
from tests.support.backing import new_name

SERVER = "http://testserver"
PASSWORD = "in-process-pa55word"  # every user the helpers create has it

# Blocking calls that are fine where they are, by (file, function) in the stack. Never Bodhi's own code on a
# request: what a request runs must not block the event loop, whatever it costs (a route moves file work to a
# thread). Jinja is not here either: the UI compiles every template when the app is built (`ui.pages.Pages`), so
# a page render reads no file.
ALLOWED_TO_BLOCK = (
    # Reads the package's own SQL files, when migrating: at an API replica's start-up (its lifespan, before it
    # serves anything) and in the tests' fixtures. No request migrates.
    ("bodhi_shared/migrate.py", "available_migrations"),
    # asyncpg, parsing a new connection's arguments, looks for ~/.pgpass and the client certificates under
    # ~/.postgresql (a few stat calls). That is per connection, not per query: the pool opens its connections at
    # start-up and only more when it grows, and Bodhi cannot tell asyncpg to skip the look (a password or an
    # explicit `ssl` in the DSN only narrows it).
    ("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args"),
    # prometheus_client's process metrics (`GET /metrics`) read /proc/self/stat, /proc/self/fd and the like:
    # files the kernel writes from memory as they are read, which never wait on a disk.
    ("prometheus_client/process_collector.py", "collect"),
)


# CPU-bound calls blockbuster cannot see by itself (C code that blocks no file or socket): refused on the loop too.
CPU_BOUND = (
    (PasswordHasher, "hash"),  # argon2: about 0.1 s a call, each one
    (PasswordHasher, "verify"),
)


def allow_known_blocking(blockbuster: BlockBuster, allowed: Iterable[tuple[str, str]] = ALLOWED_TO_BLOCK) -> None:
    for filename, function in allowed:
        for checked in blockbuster.functions.values():
            checked.can_block_in(filename, function)


def refuse_cpu_bound(blockbuster: BlockBuster, calls: Iterable[tuple[type, str]] = CPU_BOUND) -> None:
    """Add ``calls`` to an active ``blockbuster``: each raises ``BlockingError`` when made on the event loop."""
    for owner, name in calls:
        checked = BlockBusterFunction(owner, name)
        blockbuster.functions[checked.full_name] = checked
        checked.activate()


def assert_error(response: httpx.Response, status: int, error_type: str, code: str | None = None) -> dict[str, Any]:
    """``response`` is an error of ``status`` in the OpenAI shape; returns its ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def schema_dsn(database_url: str, schema: str) -> str:
    """``database_url`` whose connections use ``schema`` alone (``search_path``), as asyncpg server settings."""
    parts = urlsplit(database_url)
    query = [*parse_qsl(parts.query), ("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


_password_hashes: dict[str, str] = {}


async def password_hash(password: str = PASSWORD) -> str:
    """argon2 of ``password``, computed once per run: a hash costs about 0.1 s, too much for every test's users."""
    if password not in _password_hashes:
        _password_hashes[password] = await hash_password(password)
    return _password_hashes[password]


def highest_scope(role: Role) -> TokenScope:
    return TokenScope.POWER_USER if role.at_least(Role.POWER_USER) else TokenScope.USER


@dataclass(frozen=True, slots=True)
class Account:
    """A user of the app, with an API token and a client that sends it."""

    user: User
    token: str
    client: httpx.AsyncClient

    @property
    def username(self) -> str:
        return self.user.username

    async def add_api_model(
        self, models: list[str], *, name: str = "Example", base_url: str = "https://api.example.com/v1", **more: Any
    ) -> None:
        """An API model serving ``models`` on a provider nobody calls (a fake worker answers); the test fails
        unless it is created. ``more``: other fields of the body (``prefix``)."""
        body = {"name": name, "base_url": base_url, "api_key": "sk-" + "9" * 30, "models": models, **more}
        created = await self.client.post("/bodhi/v1/models/api", json=body)
        assert created.status_code == 201, created.text


@dataclass
class InProcessApp:
    app: FastAPI
    settings: ApiSettings
    schema: str
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def resources(self) -> Resources:
        resources: Resources = self.app.state.resources
        return resources

    @property
    def db(self) -> asyncpg.Pool:
        """The app's own pool (so: its schema)."""
        return self.resources.db

    @property
    def redis_prefix(self) -> str:
        return self.settings.redis_prefix

    @property
    def models_dir(self) -> Path:
        return self.settings.home / "models"

    def client(self, *, token: str | None = None, headers: Mapping[str, str] | None = None) -> httpx.AsyncClient:
        """A client of the app (closed with it); anonymous unless ``token`` is given."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=SERVER, headers=sent)
        self._clients.append(client)
        return client

    async def create_user(self, role: Role = Role.ADMIN, *, username: str | None = None) -> User:
        """A user with the password ``PASSWORD`` (``users.create_user`` would hash it again for each user)."""
        row = await self.db.fetchrow(
            "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING id, username, role",
            username or new_name(role.value),
            await password_hash(),
            role.value,
        )
        assert row is not None
        return User(id=row["id"], username=row["username"], role=Role(row["role"]))

    async def create_token(self, user: User, scope: TokenScope | None = None) -> str:
        """An API token of ``user``: by default of the highest scope the user's role allows."""
        _, token = await issue_token(
            self.db, user_id=user.id, name=new_name("token"), scope=scope or highest_scope(user.role)
        )
        return token

    async def account(self, role: Role = Role.ADMIN, *, scope: TokenScope | None = None) -> Account:
        """A new user of ``role`` with a token (of ``scope``, by default the highest its role allows)."""
        user = await self.create_user(role)
        token = await self.create_token(user, scope)
        return Account(user=user, token=token, client=self.client(token=token))

    async def session_client(self, user: User) -> httpx.AsyncClient:
        """A browser of ``user``: a client with a session cookie (made as login makes it, without argon2)."""
        session_id = await start_session(self.resources.redis, self.resources.keys, user_id=user.id)
        client = self.client()
        client.cookies.set(COOKIE_NAME, session_id)
        return client

    async def redis_keys(self) -> list[str]:
        """Every key under the app's prefix."""
        return await keys_under(self.settings.require_redis_url(), self.redis_prefix)

    async def aclose_clients(self) -> None:
        for client in self._clients:
            await client.aclose()


async def keys_under(redis_url: str, prefix: str) -> list[str]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    finally:
        await client.aclose()


async def delete_prefix(redis_url: str, prefix: str) -> None:
    keys = await keys_under(redis_url, prefix)
    if keys:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await client.delete(*keys)
        finally:
            await client.aclose()


@contextlib.asynccontextmanager
async def open_app(
    *, database_url: str, redis_url: str, home: Path, worker_public_key: str | None, **settings: Any
) -> AsyncIterator[InProcessApp]:
    """The app on a new schema of ``database_url`` and a new Redis prefix, both removed on the way out.

    ``worker_public_key``: the PEM, given inline (``BODHI_WORKER_PUBLIC_KEY``); None: the key file under ``home``.
    ``settings``: further ``ApiSettings`` fields.
    """
    schema, prefix = new_name("inproc"), new_name("bodhi-inproc")
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        dsn = schema_dsn(database_url, schema)
        await migrate_dsn(dsn)
        api_settings = ApiSettings(
            database_url=SecretStr(dsn),
            database_pool_size=4,
            redis_url=SecretStr(redis_url),
            redis_prefix=prefix,
            home=home,
            worker_public_key=worker_public_key,
            migrate_on_start=False,  # migrated above (through the same DSN): a second run would change nothing
            **settings,
        )
        # `bodhi api` builds the app before its event loop runs; so does this, in a thread (the UI compiles its
        # templates there).
        app = await asyncio.to_thread(create_app, api_settings)
        async with app.router.lifespan_context(app):
            in_process = InProcessApp(app=app, settings=api_settings, schema=schema)
            try:
                yield in_process
            finally:
                await in_process.aclose_clients()
    finally:
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await admin.close()
            await delete_prefix(redis_url, prefix)


# A GGUF header: the magic and version 3, then nothing a listing or `check_gguf` reads.
GGUF_HEADER = b"GGUF" + struct.pack("<I", 3) + bytes(24)


@dataclass(frozen=True, slots=True)
class HfCache:
    """A HuggingFace cache (``HF_HOME``) of a test's own. Its methods write files: call them off the event loop
    (``await asyncio.to_thread(hf_cache.add, ...)``), as the app must."""

    home: Path

    @property
    def hub(self) -> Path:
        return self.home / "hub"

    def add(self, repo: str, filename: str, *, snapshot: str = "abc123", data: bytes = GGUF_HEADER) -> Path:
        """Put ``filename`` into ``repo``'s ``snapshot``; returns its path."""
        folder = self.hub / f"models--{repo.replace('/', '--')}" / "snapshots" / snapshot
        path = folder / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path
