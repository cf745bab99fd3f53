"""``GET /ready``: 200 only when Postgres and Redis answer, the replica's subscription is up and a worker is live;
otherwise 503 naming what failed. Never cached. ``/health`` keeps its report and ``/ping`` its liveness."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.conftest import Gateway, StartGateway
from tests.support.backing import new_name
from tests.support.processes import BodhiProcess
from tests.support.redis_process import RestartableRedis


def get(gateway: Gateway, path: str) -> httpx.Response:
    return httpx.get(f"{gateway.base_url}{path}", timeout=10)


def wait_for_ready_status(gateway: Gateway, status: int, *, within: float = 15) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        answer = get(gateway, "/ready")
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


async def test_with_a_live_worker_it_is_ready(gateway: Gateway) -> None:
    answer = await asyncio.to_thread(get, gateway, "/ready")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "ready",
        "checks": {"postgres": "ok", "redis": "ok", "listener": "ok", "workers": "ok"},
        "failed": [],
    }
    assert answer.headers["cache-control"] == "no-store"


async def test_without_a_worker_it_is_not_ready_and_says_why(start_gateway: StartGateway) -> None:
    own = await asyncio.to_thread(start_gateway, worker=False)

    answer = await asyncio.to_thread(get, own, "/ready")

    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["status"] == "not_ready"
    assert body["failed"] == ["workers"]
    assert body["checks"]["workers"] == "none live"
    assert answer.headers["cache-control"] == "no-store"
    # The other endpoints keep their meaning: alive, and healthy with no worker counted.
    assert (await asyncio.to_thread(get, own, "/ping")).status_code == 200
    health = await asyncio.to_thread(get, own, "/health")
    assert health.status_code == 200
    assert health.json()["workers"] == {"remote": 0, "local": 0}
    assert health.headers["cache-control"] == "no-store"


async def test_it_follows_the_workers_as_they_come_and_go(start_gateway: StartGateway) -> None:
    own = await asyncio.to_thread(start_gateway, worker=False)
    assert (await asyncio.to_thread(get, own, "/ready")).status_code == 503

    worker = BodhiProcess(["remote-worker"], env=own.env, log_path=own.api.log_path.with_name("ready-worker.log"))
    try:
        came = await asyncio.to_thread(wait_for_ready_status, own, 200)
        assert came.status_code == 200, came.text
    finally:
        worker.stop()  # leaves the heartbeat set cleanly
    gone = await asyncio.to_thread(wait_for_ready_status, own, 503)
    assert gone.status_code == 503, gone.text
    assert gone.json()["failed"] == ["workers"]


async def test_without_redis_it_is_not_ready_and_is_again_once_redis_is_back(
    start_gateway: StartGateway, scratch: Path
) -> None:
    redis_server = RestartableRedis(scratch / f"redis-{new_name('ready')}.log")
    redis_server.start()
    try:
        own = await asyncio.to_thread(start_gateway, BODHI_REDIS_URL=redis_server.url)
        assert (await asyncio.to_thread(get, own, "/ready")).status_code == 200

        redis_server.stop()
        down = await asyncio.to_thread(wait_for_ready_status, own, 503)

        assert down.status_code == 503, down.text
        assert {"redis", "workers"} <= set(down.json()["failed"])
        assert "postgres" not in down.json()["failed"]
        redis_server.start()  # the same port, empty: the worker beats again, the replica subscribes again
        back = await asyncio.to_thread(wait_for_ready_status, own, 200, within=30)
        assert back.status_code == 200, back.text
    finally:
        redis_server.stop()
