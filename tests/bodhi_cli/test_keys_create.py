"""``bodhi keys create``: a worker key pair for a team deployment, the API given only its public half and the remote
worker only its private half (as files, as Docker or Kubernetes secrets are mounted)."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bodhi_shared.crypto import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, PrivateKey, PublicKey
from bodhi_shared.migrate import migrate_dsn
from tests.conftest import TEST_API_KEY, gateway_env
from tests.support.backing import create_database, drop_database, new_name
from tests.support.fake_upstream import FakeUpstream, Script, chunk_text, free_port
from tests.support.processes import BodhiProcess, bodhi, create_user_and_token, wait_for_workers, wait_until_serving

PASSWORD = "keys-create-pa55word"


def keys_create(*options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bodhi("keys", "create", *options),
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pem_body(path: Path) -> str:
    """The base64 lines of a PEM file: what must never be printed."""
    return "".join(line for line in path.read_text().splitlines() if not line.startswith("-----"))


def test_it_writes_a_pair_with_its_modes_and_says_where(tmp_path: Path) -> None:
    target = tmp_path / "secrets" / "bodhi"
    created = keys_create("--dir", str(target), env={"BODHI_HOME": str(tmp_path / "home")})

    assert created.returncode == 0, created.stderr
    private_path, public_path = target / PRIVATE_KEY_FILE, target / PUBLIC_KEY_FILE
    assert mode(private_path) == 0o600
    assert mode(public_path) == 0o644
    private_key = PrivateKey.load(private_path.read_text())
    assert PublicKey.load(public_path.read_text()).key_id == private_key.key_id  # one pair
    assert str(private_path) in created.stdout
    assert str(public_path) in created.stdout
    assert private_key.key_id in created.stdout
    assert pem_body(private_path) not in created.stdout + created.stderr
    assert sorted(p.name for p in target.iterdir()) == [PRIVATE_KEY_FILE, PUBLIC_KEY_FILE]  # no staging left
    assert not (tmp_path / "home").exists()  # --dir was used, not BODHI_HOME


def test_without_dir_it_writes_under_bodhi_home_where_serve_looks(tmp_path: Path) -> None:
    created = keys_create(env={"BODHI_HOME": str(tmp_path)})

    assert created.returncode == 0, created.stderr
    assert mode(tmp_path / "keys" / PRIVATE_KEY_FILE) == 0o600
    assert str(tmp_path / "keys" / PUBLIC_KEY_FILE) in created.stdout


def test_the_private_key_is_0600_whatever_the_umask_and_the_public_0644(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", "-c", 'umask "$0" && exec "$@"', "000", *bodhi("keys", "create", "--dir", str(tmp_path / "open"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert mode(tmp_path / "open" / PRIVATE_KEY_FILE) == 0o600
    done = subprocess.run(
        ["sh", "-c", 'umask "$0" && exec "$@"', "077", *bodhi("keys", "create", "--dir", str(tmp_path / "shut"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert mode(tmp_path / "shut" / PUBLIC_KEY_FILE) == 0o644


@pytest.mark.parametrize("present", [PRIVATE_KEY_FILE, PUBLIC_KEY_FILE])
def test_it_refuses_to_replace_an_existing_key(tmp_path: Path, present: str) -> None:
    assert keys_create("--dir", str(tmp_path)).returncode == 0
    (tmp_path / ({PRIVATE_KEY_FILE, PUBLIC_KEY_FILE} - {present}).pop()).unlink()  # a half pair is refused too
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    refused = keys_create("--dir", str(tmp_path))

    assert refused.returncode != 0
    assert str(tmp_path / present) in refused.stderr
    assert "--force" in refused.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_force_replaces_the_pair_and_keeps_the_old_private_key(tmp_path: Path) -> None:
    assert keys_create("--dir", str(tmp_path)).returncode == 0
    old = PrivateKey.load((tmp_path / PRIVATE_KEY_FILE).read_text())

    replaced = keys_create("--dir", str(tmp_path), "--force")

    assert replaced.returncode == 0, replaced.stderr
    new = PrivateKey.load((tmp_path / PRIVATE_KEY_FILE).read_text())
    assert new.key_id != old.key_id
    assert PublicKey.load((tmp_path / PUBLIC_KEY_FILE).read_text()).key_id == new.key_id
    retired = tmp_path / f"worker_private_key.{old.key_id}.pem"
    assert PrivateKey.load(retired.read_text()).key_id == old.key_id  # provider keys sealed for it still open
    assert mode(retired) == 0o600
    assert str(retired) in replaced.stderr
    assert pem_body(retired) not in replaced.stdout + replaced.stderr
    assert pem_body(tmp_path / PRIVATE_KEY_FILE) not in replaced.stdout + replaced.stderr


@pytest.fixture
async def own_database(postgres_server_url: str) -> AsyncIterator[str]:
    """A database of this test's own: an API with another public key re-binds no other test's stored keys."""
    name = new_name("bodhi_keys")
    url = await create_database(postgres_server_url, name)
    await migrate_dsn(url)
    yield url
    await drop_database(postgres_server_url, name)


async def test_an_api_with_only_the_public_key_and_a_worker_with_only_the_private_key_answer(
    tmp_path: Path, own_database: str, redis_url: str, fake_upstream: FakeUpstream
) -> None:
    made = tmp_path / "made"
    assert keys_create("--dir", str(made)).returncode == 0
    # Each process gets its own secret mount, and a BODHI_HOME that holds no key at all.
    api_secrets, worker_secrets = tmp_path / "api-secrets", tmp_path / "worker-secrets"
    api_secrets.mkdir()
    worker_secrets.mkdir()
    shutil.move(made / PUBLIC_KEY_FILE, api_secrets / "public.pem")
    shutil.move(made / PRIVATE_KEY_FILE, worker_secrets / "private.pem")
    port, prefix = free_port(), new_name("bodhitest-split")
    common = gateway_env(
        database_url=own_database, redis_url=redis_url, redis_prefix=prefix, home=tmp_path / "unused", port=port
    )
    shutil.rmtree(tmp_path / "unused")  # gateway_env made a pair there: neither process may find one
    api_env = common | {
        "BODHI_HOME": str(tmp_path / "api-home"),
        "BODHI_WORKER_PUBLIC_KEY_FILE": str(api_secrets / "public.pem"),
    }
    worker_env = common | {
        "BODHI_HOME": str(tmp_path / "worker-home"),
        "BODHI_WORKER_PRIVATE_KEY_FILES": str(worker_secrets / "private.pem"),
    }
    api = BodhiProcess(["api"], env=api_env, log_path=tmp_path / "api.log")
    worker = BodhiProcess(["remote-worker"], env=worker_env, log_path=tmp_path / "worker.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until_serving, base_url, api)
        await asyncio.to_thread(wait_for_workers, base_url)
        token = await asyncio.to_thread(
            create_user_and_token, api_env, username=f"split-{uuid.uuid4().hex[:6]}", password=PASSWORD
        )
        model = f"split-{uuid.uuid4().hex[:8]}"
        script = Script(chunks=3)
        fake_upstream.scripts[model] = script
        async with httpx.AsyncClient(
            base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            created = await http.post(
                "/bodhi/v1/models/api",
                json={"name": "split", "base_url": fake_upstream.base_url, "api_key": TEST_API_KEY, "models": [model]},
            )
            assert created.status_code == 201, created.text
            answer = await http.post(
                "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "".join(chunk_text(script, i) for i in range(3))
        # The worker opened the key the API sealed: the provider got it.
        assert fake_upstream.requests_for(model)[-1].headers["authorization"] == f"Bearer {TEST_API_KEY}"
        assert not (tmp_path / "api-home" / "keys").exists()
        assert not (tmp_path / "worker-home" / "keys").exists()
    finally:
        api.stop()
        worker.stop()
