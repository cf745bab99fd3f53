"""A job nobody picks up ends in 503 after the pickup timeout, not in a hang."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import Gateway, RegisterUpstream, gateway_env
from tests.support.backing import new_name
from tests.support.fake_upstream import free_port
from tests.support.processes import BodhiProcess, wait_until_serving


async def test_no_worker_gives_503_within_the_pickup_timeout(
    gateway: Gateway, database_url: str, redis_url: str, scratch: Path, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream()
    port = free_port()
    # A namespace of its own: no worker consumes this queue.
    env = gateway_env(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=new_name("bodhitest-lonely"),
        home=scratch / "lonely",
        port=port,
    ) | {"BODHI_PICKUP_TIMEOUT": "1"}
    api = BodhiProcess(["api"], env=env, log_path=scratch / "lonely-api.log")
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", api)
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=10, headers=gateway.auth_headers) as http:
            response = await http.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": model, "messages": [], "stream": True}
            )
        elapsed = time.monotonic() - started
    finally:
        api.stop()

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_worker_available"
    assert model in error["message"]
    assert elapsed < 5
