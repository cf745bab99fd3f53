"""Postgres stopped under a running API: 503 with Retry-After meanwhile (not 500), and recovery without a restart.

The API here has a Postgres of its own (pgserver, the embedded default's), stopped and started again on the same
data directory, so its URL (a unix socket there) stays the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pgserver
import pytest

from tests.conftest import Gateway, gateway_env
from tests.support.backing import new_name
from tests.support.fake_upstream import free_port
from tests.support.processes import BodhiProcess, create_user_and_token, wait_until_serving

PASSWORD = "outage-pa55word"


class RestartablePostgres:
    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._server: Any = None
        self.url = ""

    def start(self) -> None:
        self._server = pgserver.get_server(self._data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
        self.url = str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[RestartablePostgres]:
    server = RestartablePostgres(tmp_path / "pg")
    server.start()
    yield server
    server.stop()


async def test_postgres_down_is_a_503_and_the_api_recovers(
    gateway: Gateway, own_postgres: RestartablePostgres, redis_url: str, scratch: Path
) -> None:
    port = free_port()
    env = gateway_env(
        database_url=own_postgres.url,
        redis_url=redis_url,
        redis_prefix=new_name("bodhitest-pg-outage"),
        home=Path(gateway.env["BODHI_HOME"]),
        port=port,
    )
    api = BodhiProcess(["api"], env=env, log_path=scratch / f"pg-outage-api-{port}.log")
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", api)  # it migrated the new database
        name = new_name("pg-outage")
        await asyncio.to_thread(create_user_and_token, env, username=name, password=PASSWORD)
        login = {"username": name, "password": PASSWORD}
        chat = {"model": "anything", "messages": []}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            assert (await http.post("/bodhi/v1/auth/login", json=login)).status_code == 200

            await asyncio.to_thread(own_postgres.stop)
            down = [
                await http.post("/bodhi/v1/auth/login", json=login),
                await http.post("/v1/chat/completions", json=chat),
            ]
            health = await http.get("/health")

            await asyncio.to_thread(own_postgres.start)
            back_at = time.monotonic()
            while (await http.post("/bodhi/v1/auth/login", json=login)).status_code != 200:
                assert time.monotonic() - back_at < 15, "the API did not recover after Postgres came back"
                await asyncio.sleep(0.2)
            recovered_after = time.monotonic() - back_at
        log = api.log_text()
    finally:
        api.stop()

    for response in down:
        assert response.status_code == 503, response.text  # not 500 "internal error"
        assert response.json()["error"]["code"] == "service_unavailable"
        assert response.headers["retry-after"]
    assert health.status_code == 503
    assert health.json()["postgres"].startswith("error")
    assert recovered_after < 15
    assert api.popen.returncode is not None  # stopped by us, not before
    assert "Exception in ASGI application" not in log  # handled: no crash past the handlers, no dropped connection
    assert " ERROR bodhi" not in log
