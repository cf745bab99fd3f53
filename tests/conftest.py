"""Session fixtures: real Postgres and Redis, a fake upstream, and a gateway run as real processes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis

from bodhi_shared.crypto import load_or_create_key_pair
from bodhi_shared.migrate import migrate_dsn
from bodhi_shared.worker_keys import KEYS_DIR
from tests.support.backing import create_database, drop_database, new_name, postgres_server, redis_server
from tests.support.fake_upstream import FakeUpstream, Script, free_port
from tests.support.llama_server import run_llama_server
from tests.support.processes import BodhiProcess, create_user_and_token, wait_for_workers, wait_until_serving
from tests.support.tiny_gguf import write_tiny_llama_gguf

TEST_API_KEY = "sk-test-" + "k3y" * 8  # planted: must reach the upstream and nothing else
ADMIN_PASSWORD = "admin-pa55word-planted"  # planted: must appear in no response and no log


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bodhi")


@pytest.fixture(scope="session")
def postgres_server_url(scratch: Path) -> Iterator[str]:
    with postgres_server(scratch) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(scratch: Path) -> Iterator[str]:
    with redis_server(scratch) as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A database of this test run's own, migrated, dropped at the end."""
    name = new_name("bodhi_test")
    url = await create_database(postgres_server_url, name)
    await migrate_dsn(url)
    yield url
    await drop_database(postgres_server_url, name)


@pytest.fixture(scope="session")
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A Redis namespace of this test run's own; its keys are deleted at the end."""
    prefix = new_name("bodhitest")
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


LLAMA_ALIAS = "tiny-llama"


@pytest.fixture(scope="session")
def llama_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT/v1``) of llama_cpp.server serving a generated tiny GGUF."""
    scratch = tmp_path_factory.mktemp("llama-peer")
    model = write_tiny_llama_gguf(scratch / "tiny-llama.gguf")
    with run_llama_server(model, model_alias=LLAMA_ALIAS, log_path=scratch / "llama-server.log") as base_url:
        yield base_url


@dataclass
class Gateway:
    base_url: str
    api: BodhiProcess
    worker: BodhiProcess | None
    env: dict[str, str]
    admin_username: str
    admin_token: str  # an admin's token with scope power_user

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def logs(self) -> str:
        return self.api.log_text() + (self.worker.log_text() if self.worker else "")


def gateway_env(*, database_url: str, redis_url: str, redis_prefix: str, home: Path, port: int) -> dict[str, str]:
    """The environment of a gateway process; its worker key pair is created under ``home/keys``."""
    load_or_create_key_pair(home / KEYS_DIR)
    return {
        "BODHI_DATABASE_URL": database_url,
        "BODHI_REDIS_URL": redis_url,
        "BODHI_REDIS_PREFIX": redis_prefix,
        "BODHI_HOME": str(home),
        "BODHI_PORT": str(port),
        "BODHI_LOG_LEVEL": "DEBUG",
        "BODHI_ALLOW_PRIVATE_UPSTREAMS": "true",  # the fake providers listen on loopback
        "BODHI_DRAIN_TIMEOUT": "5",  # tests stop processes with work in flight: drain briefly (the default is 30 s)
    }


@pytest.fixture(scope="session")
def gateway(database_url: str, redis_url: str, redis_prefix: str, scratch: Path) -> Iterator[Gateway]:
    """One API process and one remote worker, on this run's database and Redis namespace."""
    port = free_port()
    env = gateway_env(
        database_url=database_url, redis_url=redis_url, redis_prefix=redis_prefix, home=scratch / "home", port=port
    )
    api = BodhiProcess(["api"], env=env, log_path=scratch / "api.log")
    worker = BodhiProcess(["remote-worker"], env=env, log_path=scratch / "remote-worker.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base_url, api)
        wait_for_workers(base_url)
        admin = new_name("admin")
        token = create_user_and_token(env, username=admin, password=ADMIN_PASSWORD)
        yield Gateway(base_url=base_url, api=api, worker=worker, env=env, admin_username=admin, admin_token=token)
    finally:
        api.stop()
        worker.stop()


StartGateway = Callable[..., Gateway]


@pytest.fixture
def start_gateway(gateway: Gateway, scratch: Path) -> Iterator[StartGateway]:
    """Start another API (and, unless ``worker=False``, a remote worker) in a Redis namespace of its own.

    It shares the test run's database and worker keys, so the run's users, tokens and API models work there.
    """
    started: list[Gateway] = []

    def start(*, worker: bool = True, **settings: str) -> Gateway:
        port, prefix = free_port(), new_name("bodhitest-own")
        env = gateway.env | {"BODHI_PORT": str(port), "BODHI_REDIS_PREFIX": prefix} | settings
        api = BodhiProcess(["api"], env=env, log_path=scratch / f"{prefix}-api.log")
        remote = BodhiProcess(["remote-worker"], env=env, log_path=scratch / f"{prefix}-worker.log") if worker else None
        own = Gateway(
            base_url=f"http://127.0.0.1:{port}",
            api=api,
            worker=remote,
            env=env,
            admin_username=gateway.admin_username,
            admin_token=gateway.admin_token,
        )
        started.append(own)
        wait_until_serving(own.base_url, api)
        if remote is not None:
            wait_for_workers(own.base_url)
        return own

    yield start
    for own in started:
        own.api.stop()
        if own.worker is not None:
            own.worker.stop()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the gateway with the admin's token (scope power_user)."""
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20, headers=gateway.auth_headers) as http:
        yield http


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


RegisterUpstream = Callable[..., Awaitable[str]]


@pytest.fixture
def register_upstream(client: httpx.AsyncClient, fake_upstream: FakeUpstream) -> RegisterUpstream:
    """Create an API model serving one fresh model id on the fake upstream with ``script``; returns the id."""

    async def register(script: Script | None = None, *, model: str | None = None, base_url: str | None = None) -> str:
        name = model or f"fake-{uuid.uuid4().hex[:8]}"
        fake_upstream.scripts[name] = script or Script()
        created = await client.post(
            "/bodhi/v1/models/api",
            json={
                "name": f"fake for {name}",
                "base_url": base_url or fake_upstream.base_url,
                "api_key": TEST_API_KEY,
                "models": [name],
            },
        )
        assert created.status_code == 201, created.text
        return name

    return register
