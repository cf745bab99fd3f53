"""A Redis restart under load: streams end instead of hanging, and the same processes serve again after it.

The gateway here has a Redis of its own (``RestartableRedis``), killed with SIGKILL under 50 streams and started again
on the same port, empty, as after a crash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway, RegisterUpstream, gateway_env
from tests.support.backing import new_name
from tests.support.fake_upstream import Script, free_port
from tests.support.processes import BodhiProcess, wait_for_workers, wait_until_serving
from tests.support.redis_process import RestartableRedis

STREAMS = 50  # the acceptance: kill Redis under 50 concurrent streams
OUTAGE_S = 1.5


@pytest.fixture
def own_redis(scratch: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(scratch / f"redis-{new_name('outage')}.log")
    server.start()
    yield server
    server.stop()


async def stream_until_end(http: httpx.AsyncClient, model: str) -> tuple[str, float]:
    """Read one stream to its end; return how it ended (`done`, `error`, or `cut`) and when."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ended = "cut"
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                return "error", time.monotonic()
            async for line in response.aiter_lines():
                if line.startswith('data: {"error"'):
                    ended = "error"
                elif line == "data: [DONE]" and ended == "cut":
                    ended = "done"
    except httpx.HTTPError:
        ended = "cut"
    return ended, time.monotonic()


async def test_a_redis_restart_ends_streams_and_the_same_processes_recover(
    gateway: Gateway, database_url: str, own_redis: RestartableRedis, scratch: Path, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=60, delay=0.25))  # 15 s each: still running when Redis dies
    quick = await register_upstream(Script(chunks=1))
    port = free_port()
    env = gateway_env(
        database_url=database_url,
        redis_url=own_redis.url,
        redis_prefix=new_name("bodhitest-outage"),
        home=Path(gateway.env["BODHI_HOME"]),
        port=port,
    )
    api = BodhiProcess(["api"], env=env, log_path=scratch / f"outage-api-{port}.log")
    worker = BodhiProcess(["remote-worker"], env=env, log_path=scratch / f"outage-worker-{port}.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base_url, api)
        wait_for_workers(base_url)
        async with httpx.AsyncClient(base_url=base_url, headers=gateway.auth_headers, timeout=60) as http:
            streams = [asyncio.ensure_future(stream_until_end(http, model)) for _ in range(STREAMS)]
            await asyncio.sleep(2)  # every stream under way
            assert not any(s.done() for s in streams)
            own_redis.stop()
            killed_at = time.monotonic()
            await asyncio.sleep(0.3)
            refused = await http.post("/v1/chat/completions", json={"model": quick, "messages": []})
            unhealthy = await http.get("/health")
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed_at)))
            own_redis.start()
            back_at = time.monotonic()
            served_at = await first_success(http, quick)  # while the broken streams are still ending
            ends = await asyncio.wait_for(asyncio.gather(*streams), timeout=30)
            health = (await http.get("/health")).json()
    finally:
        api_code, worker_code = api.popen.poll(), worker.popen.poll()
        api_log, worker_log = api.log_text(), worker.log_text()
        api.stop()
        worker.stop()

    assert api_code is None, api_log  # neither process died or was restarted
    assert worker_code is None, worker_log
    assert all(how in ("error", "done") for how, _ in ends), ends  # every stream ended with an error or [DONE]
    assert max(at for _, at in ends) - killed_at < 10
    assert served_at - back_at < 5, served_at - back_at
    assert health["listeners"] == {"stream hub": "up"}
    assert refused.status_code == 503, refused.text  # not a 500: Redis is down, and the client may retry
    assert refused.json()["error"]["code"] == "service_unavailable"
    assert refused.headers["retry-after"] == "2"
    assert unhealthy.status_code == 503
    assert unhealthy.json()["listeners"] == {"stream hub": "down"}
    assert "lost its Redis subscription" in api_log
    assert "subscribed again" in api_log
    assert "Task exception was never retrieved" not in api_log + worker_log
    assert "Traceback" not in worker_log


async def first_success(http: httpx.AsyncClient, model: str, *, within: float = 20) -> float:
    """When a short non-streamed chat first succeeds (polled): the gateway serves again."""
    deadline = time.monotonic() + within
    while True:
        try:
            answered = await http.post("/v1/chat/completions", json={"model": model, "messages": []}, timeout=5)
            if answered.status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "no request succeeded after Redis came back"
        await asyncio.sleep(0.1)
