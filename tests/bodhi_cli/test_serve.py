"""``bodhi serve`` on the embedded default, and API replicas starting together."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import httpx

from bodhi_shared.migrate import available_migrations
from tests.conftest import gateway_env
from tests.support.backing import create_database, drop_database, new_name
from tests.support.fake_upstream import FakeUpstream, free_port
from tests.support.processes import BodhiProcess, create_user_and_token, run_bodhi, wait_for_workers, wait_until_serving

EMBEDDED_TIMEOUT = 60


def embedded_env(home: Path, port: int) -> dict[str, str]:
    """An environment with no database or Redis URL, so ``bodhi serve`` starts its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("BODHI_DATABASE_URL", "BODHI_REDIS_URL")}
    return env | {"BODHI_HOME": str(home), "BODHI_PORT": str(port)}


def chat(base_url: str, model: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/chat/completions",
        timeout=20,
        headers={"Authorization": f"Bearer {token}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )


def test_serve_runs_everything_embedded_and_keeps_data_across_restarts(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    home, port = tmp_path / "home", free_port()
    env = embedded_env(home, port)
    base_url = f"http://127.0.0.1:{port}"

    serve = BodhiProcess(["serve"], env=env, log_path=tmp_path / "serve-1.log")
    try:
        wait_until_serving(base_url, serve, timeout=EMBEDDED_TIMEOUT)
        wait_for_workers(base_url)
        token = create_user_and_token(env, username="keeper", password="keeper-password")
        created = httpx.post(
            f"{base_url}/bodhi/v1/models/api",
            headers={"Authorization": f"Bearer {token}"},
            json={"base_url": fake_upstream.base_url, "api_key": "sk-kept", "models": ["kept-model"]},
            timeout=20,
        )
        assert created.status_code == 201, created.text
        first = chat(base_url, "kept-model", token)
        assert first.status_code == 200, first.text
    finally:
        first_exit = serve.stop()
    assert first_exit == 0, serve.log_text()
    assert (home / "postgres").is_dir()

    serve = BodhiProcess(["serve"], env=env, log_path=tmp_path / "serve-2.log")
    try:
        wait_until_serving(base_url, serve, timeout=EMBEDDED_TIMEOUT)
        wait_for_workers(base_url)
        response = chat(base_url, "kept-model", token)  # the user, token, API model and key pair all survived
    finally:
        second_exit = serve.stop()
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"
    assert second_exit == 0, serve.log_text()


async def test_two_api_processes_started_together_both_come_up(
    postgres_server_url: str, redis_url: str, tmp_path: Path
) -> None:
    name = new_name("bodhi_test_twin")
    database_url = await create_database(postgres_server_url, name)
    ports = [free_port(), free_port()]
    apis = [
        BodhiProcess(
            ["api"],
            log_path=tmp_path / f"api-{i}.log",
            env=gateway_env(
                database_url=database_url,
                redis_url=redis_url,
                redis_prefix=new_name("bodhitest-twin"),
                home=tmp_path,
                port=port,
            ),
        )
        for i, port in enumerate(ports)
    ]
    try:
        await asyncio.gather(
            *(
                asyncio.to_thread(wait_until_serving, f"http://127.0.0.1:{port}", api)
                for port, api in zip(ports, apis, strict=True)
            )
        )
        conn = await asyncpg.connect(database_url)
        try:
            versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        finally:
            await conn.close()
    finally:
        for api in apis:
            api.stop()
        await drop_database(postgres_server_url, name)
    assert sorted(versions) == [v for v, _ in available_migrations()]


async def test_migrate_command_applies_once(postgres_server_url: str, tmp_path: Path) -> None:
    name = new_name("bodhi_test_migrate")
    database_url = await create_database(postgres_server_url, name)
    env = {**os.environ, "BODHI_DATABASE_URL": database_url, "BODHI_HOME": str(tmp_path)}
    try:
        first = await asyncio.to_thread(run_bodhi, "migrate", env=env)
        second = await asyncio.to_thread(run_bodhi, "migrate", env=env)
    finally:
        await drop_database(postgres_server_url, name)
    assert f"applied {len(available_migrations())} migration(s)" in first.stdout
    assert "none pending" in second.stdout
