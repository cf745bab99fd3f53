"""Fixtures of the in-process tests: the API app in this process, on the run's real Postgres and Redis.

Each test gets a Postgres schema and a Redis prefix of its own (``harness.open_app``), an empty HuggingFace
cache, and an event loop that refuses blocking calls (blockbuster) from its first fixture to its last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from bodhi_api.auth.roles import Role
from bodhi_shared.crypto import PUBLIC_KEY_FILE, load_or_create_key_pair
from bodhi_shared.worker_keys import KEYS_DIR
from tests.inprocess.harness import Account, HfCache, InProcessApp, allow_known_blocking, open_app, refuse_cpu_bound


@pytest.fixture(autouse=True)
def blocking_refused() -> Iterator[BlockBuster]:
    """A blocking call (file, socket, sleep, lock, argon2) made on the event loop raises ``BlockingError``.

    Set up first and torn down last (autouse, no dependencies), so the app's lifespan, every request and the
    fixtures' own async code are checked; sync fixtures run outside the loop and may write files.
    """
    with blockbuster_ctx() as blockbuster:
        allow_known_blocking(blockbuster)
        refuse_cpu_bound(blockbuster)
        yield blockbuster


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HfCache:
    """An empty HuggingFace cache of the test's own (``HF_HOME``): the machine's own cache never shows."""
    home = tmp_path / "hf"
    (home / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    return HfCache(home)


@pytest.fixture(scope="session")
def worker_keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("inprocess-home") / KEYS_DIR
    load_or_create_key_pair(keys)
    return keys


@pytest.fixture(scope="session")
def worker_public_key(worker_keys_dir: Path) -> str:
    return (worker_keys_dir / PUBLIC_KEY_FILE).read_text()


@pytest.fixture
def bodhi_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    return home


AppFactory = Callable[..., AbstractAsyncContextManager[InProcessApp]]


@pytest.fixture
def app_factory(database_url: str, redis_url: str, bodhi_home: Path, worker_public_key: str) -> AppFactory:
    """``async with app_factory(**settings) as app``: one more app, on a schema and a prefix of its own."""

    def factory(**settings: Any) -> AbstractAsyncContextManager[InProcessApp]:
        given: dict[str, Any] = {"home": bodhi_home, "worker_public_key": worker_public_key} | settings
        return open_app(database_url=database_url, redis_url=redis_url, **given)

    return factory


@pytest.fixture
async def bodhi(app_factory: AppFactory) -> AsyncIterator[InProcessApp]:
    """The test's app."""
    async with app_factory() as app:
        yield app


@pytest.fixture
async def admin(bodhi: InProcessApp) -> Account:
    """An admin with a token of scope power_user (what a token of an admin can be at most)."""
    return await bodhi.account(Role.ADMIN)


@pytest.fixture
async def power_user(bodhi: InProcessApp) -> Account:
    return await bodhi.account(Role.POWER_USER)


@pytest.fixture
async def user(bodhi: InProcessApp) -> Account:
    return await bodhi.account(Role.USER)
