"""A worker that dies after it took a job but before the client got anything: the job runs again on another worker.

Before, such a request failed: 502 ``worker_lost`` once its worker had sent STARTED, or, killed between its claim
and its STARTED, a 503 after twice the pickup timeout. Now the API enqueues the same job (same id) again, once
(``dispatch.MAX_REDISPATCHES``). A stream that had started still ends with an in-band ``worker_lost``.

The dying workers here are ``DyingWorker``: a real ``WakeableWorker`` in this process (the real claim, naming its
id), whose job does what the test says (nothing, STARTED, STARTED and a chunk) and then hangs while its heartbeat
stops, as a killed process's would. The worker that takes the job again is a real ``bodhi remote-worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import ArqRedis
from arq.worker import func

from bodhi_shared.contract import INFERENCE_FUNCTION, EventKind, InferenceJob, StreamEvent
from bodhi_shared.queue import WakeableWorker, claimed_by, create_queue_pool
from bodhi_shared.redis_keys import REMOTE_WORKER_KIND, RedisKeys
from tests.conftest import Gateway, RegisterUpstream, StartGateway
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.processes import BodhiProcess

HEARTBEAT_TTL = 3.0  # the default: a worker starved of CPU for a moment on a busy test machine is not dead
# Heartbeats every 0.2 s, so a dead worker is seen within the TTL and a second. The pickup timeout stays 10 s: the old
# code's answer to a job claimed by a worker that died before STARTED (503 after twice that) comes within the wait.
FAST = {"BODHI_HEARTBEAT_INTERVAL": "0.2", "BODHI_HEARTBEAT_TTL": str(HEARTBEAT_TTL)}
WORKER_HEADER = "x-bodhi-worker"
MESSAGES = [{"role": "user", "content": "hi"}]


class DyingWorker:
    """Claims one job with the real claim, sends what it is told, then "dies": its heartbeat stops, its job hangs."""

    def __init__(self, pool: ArqRedis, keys: RedisKeys, *, send: tuple[EventKind, ...] = ()) -> None:
        self.id = f"{REMOTE_WORKER_KIND}-dying-{uuid.uuid4().hex[:8]}"
        self.claimed = asyncio.Event()
        self._pool, self._keys, self._send = pool, keys, send
        self._alive = True
        self._hang = asyncio.Event()  # never set: the job of a dead worker never ends
        self.worker = WakeableWorker(
            functions=[func(self._job, name=INFERENCE_FUNCTION, max_tries=1)],
            queue_name=keys.remote_queue,
            wake_channel=keys.wake_channel(keys.remote_queue),
            worker_id=self.id,
            redis_pool=pool,
            max_jobs=1,
            poll_delay=0.05,
            keep_result=0,
            handle_signals=False,
        )
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        await self._beat()
        self._tasks = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self.worker.async_run())]

    def die(self) -> None:
        self._alive = False

    async def stop(self) -> None:
        self.die()
        for task in [*self._tasks, *self.worker.tasks.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self.worker.tasks.values(), return_exceptions=True)
        await self._pool.zrem(self._keys.workers(REMOTE_WORKER_KIND), self.id)

    async def _beat(self) -> None:
        await self._pool.zadd(self._keys.workers(REMOTE_WORKER_KIND), {self.id: time.time()})

    async def _heartbeat(self) -> None:
        while self._alive:
            await self._beat()
            await asyncio.sleep(0.2)

    async def _job(self, ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        self.worker.stop_taking_jobs()  # one job: the one it dies with
        job = InferenceJob.from_wire(payload)
        for kind in self._send:
            event = StreamEvent(kind, request_id=job.request_id)
            if kind == EventKind.STARTED:
                event = StreamEvent(
                    kind, meta={"worker": self.id, "kind": REMOTE_WORKER_KIND}, request_id=job.request_id
                )
            elif kind == EventKind.CHUNK:
                chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "half"}}]}
                event = StreamEvent(
                    kind, data=b"data: " + json.dumps(chunk).encode() + b"\n\n", request_id=job.request_id
                )
            await self._pool.publish(job.channel, event.encode())
        self.claimed.set()
        await self._hang.wait()


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_queue_pool(redis_url)
    yield redis
    await redis.aclose()


@dataclass
class Lab:
    """What these tests use: gateways of their own, the fake provider, a Redis client, real workers they start."""

    start_gateway: StartGateway
    register_upstream: RegisterUpstream
    fake_upstream: FakeUpstream
    pool: ArqRedis
    scratch: Path
    real_workers: list[BodhiProcess]


@pytest.fixture
def lab(
    start_gateway: StartGateway,
    register_upstream: RegisterUpstream,
    fake_upstream: FakeUpstream,
    pool: ArqRedis,
    scratch: Path,
) -> Iterator[Lab]:
    started: list[BodhiProcess] = []
    yield Lab(start_gateway, register_upstream, fake_upstream, pool, scratch, started)
    for process in started:
        process.stop()


@contextlib.asynccontextmanager
async def dying_worker(
    pool: ArqRedis, keys: RedisKeys, *, send: tuple[EventKind, ...] = ()
) -> AsyncIterator[DyingWorker]:
    worker = DyingWorker(pool, keys, send=send)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


async def live_worker_ids(pool: ArqRedis, keys: RedisKeys) -> set[str]:
    members = await pool.zrangebyscore(keys.workers(REMOTE_WORKER_KIND), time.time() - HEARTBEAT_TTL, "+inf")
    return {member.decode() for member in members}


async def start_real_worker(own: Gateway, lab: Lab) -> str:
    """Start a ``bodhi remote-worker`` in the gateway's namespace; return its id once it heartbeats."""
    keys = RedisKeys(own.env["BODHI_REDIS_PREFIX"])
    before = await live_worker_ids(lab.pool, keys)
    log = lab.scratch / f"worker-lost-{uuid.uuid4().hex[:8]}.log"
    process = BodhiProcess(["remote-worker"], env=own.env, log_path=log)
    lab.real_workers.append(process)
    deadline = time.monotonic() + 30
    while not (new := await live_worker_ids(lab.pool, keys) - before):
        assert process.popen.poll() is None, process.log_text()
        assert time.monotonic() < deadline, process.log_text()
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # its wake listener subscribes after its first beat
    return new.pop()


async def own_gateway(start_gateway: StartGateway, **settings: str) -> tuple[Gateway, RedisKeys]:
    own = await asyncio.to_thread(start_gateway, worker=False, **(FAST | settings))
    return own, RedisKeys(own.env["BODHI_REDIS_PREFIX"])


@pytest.mark.parametrize("sent", [(), (EventKind.STARTED,)], ids=["before-started", "after-started"])
async def test_a_job_whose_worker_died_before_sending_anything_is_served_by_another(
    lab: Lab, sent: tuple[EventKind, ...]
) -> None:
    own, keys = await own_gateway(lab.start_gateway)
    model = await lab.register_upstream(Script(chunks=3))
    body = {"model": model, "messages": MESSAGES}
    async with (
        dying_worker(lab.pool, keys, send=sent) as dying,
        httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=60) as http,
    ):
        answer = asyncio.ensure_future(http.post("/v1/chat/completions", json=body))
        await asyncio.wait_for(dying.claimed.wait(), 10)
        request_id = await only_claim(lab.pool, keys)
        assert await claimed_by(lab.pool, keys.remote_queue, request_id) == dying.id  # the claim names its worker
        survivor = await start_real_worker(own, lab)
        dying.die()
        died_at = time.monotonic()
        response = await asyncio.wait_for(answer, 30)

    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "tok0 tok1 tok2 "
    assert response.headers[WORKER_HEADER] == survivor
    assert response.headers["x-bodhi-request-id"] == request_id  # the same job, under the same id
    assert time.monotonic() - died_at < HEARTBEAT_TTL + 4
    assert len(lab.fake_upstream.requests_for(model)) == 1  # the dead worker never reached the provider
    assert "enqueuing the job again" in own.api.log_text()


async def only_claim(pool: ArqRedis, keys: RedisKeys) -> str:
    """The id of the one job claimed on the gateway's remote queue."""
    claims: list[str] = [key.decode() async for key in pool.scan_iter(match=f"{keys.remote_queue}:claim:*")]
    assert len(claims) == 1, claims
    return claims[0].rsplit(":", 1)[1]


async def test_a_stream_whose_worker_died_after_its_first_chunk_ends_in_band_and_is_not_run_again(
    lab: Lab,
) -> None:
    own, keys = await own_gateway(lab.start_gateway)
    model = await lab.register_upstream(Script(chunks=3))
    body = {"model": model, "messages": MESSAGES, "stream": True}
    async with (
        dying_worker(lab.pool, keys, send=(EventKind.STARTED, EventKind.CHUNK)) as dying,
        httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        await start_real_worker(own, lab)  # would take the job, were it enqueued again
        dying.die()
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]

    assert json.loads(lines[0].removeprefix("data: "))["choices"][0]["delta"]["content"] == "half"
    assert json.loads(lines[-2].removeprefix("data: "))["error"]["code"] == "worker_lost"
    assert lines[-1] == "data: [DONE]"
    assert len(lines) == 3
    assert lab.fake_upstream.requests_for(model) == []  # part of the answer had reached the client: never run again


async def test_a_job_is_enqueued_again_only_once(
    lab: Lab,
) -> None:
    """Two workers die on the same job in turn: the client gets 502 ``worker_lost``, though a third is alive (a job
    that kills its workers, a model crashing llama.cpp, must not take every worker down)."""
    own, keys = await own_gateway(lab.start_gateway)
    model = await lab.register_upstream(Script(chunks=3))
    body = {"model": model, "messages": MESSAGES}
    async with (
        dying_worker(lab.pool, keys, send=(EventKind.STARTED,)) as first,
        httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=60) as http,
    ):
        answer = asyncio.ensure_future(http.post("/v1/chat/completions", json=body))
        await asyncio.wait_for(first.claimed.wait(), 10)
        async with dying_worker(lab.pool, keys, send=(EventKind.STARTED,)) as second:
            await asyncio.sleep(0.3)  # its wake listener subscribes
            first.die()
            await asyncio.wait_for(second.claimed.wait(), HEARTBEAT_TTL + 5)  # enqueued again: the second took it
            await start_real_worker(own, lab)
            second.die()
            response = await asyncio.wait_for(answer, 30)

    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "worker_lost"
    assert lab.fake_upstream.requests_for(model) == []


async def test_killing_the_worker_running_a_job_before_its_first_token_moves_it_to_the_other(
    lab: Lab,
) -> None:
    """Two real workers; the one that took the job (waiting for the provider's first byte) is SIGKILLed."""
    own = await asyncio.to_thread(lab.start_gateway, **FAST)
    keys = RedisKeys(own.env["BODHI_REDIS_PREFIX"])
    assert own.worker is not None
    other = await start_real_worker(own, lab)
    model = await lab.register_upstream(Script(chunks=3, latency=2.0))
    body = {"model": model, "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=60) as http:
        answer = asyncio.ensure_future(http.post("/v1/chat/completions", json=body))
        deadline = time.monotonic() + 10
        while not lab.fake_upstream.requests_for(model):
            assert time.monotonic() < deadline, "the job never reached the provider"
            await asyncio.sleep(0.02)
        request_id = await only_claim(lab.pool, keys)
        taker = await claimed_by(lab.pool, keys.remote_queue, request_id)
        assert taker is not None
        pid = int(await lab.pool.hget(keys.worker_info(taker), "pid"))  # type: ignore[misc]  # sync|async union
        survivor = other if taker != other else next(iter(await live_worker_ids(lab.pool, keys) - {other}))
        os.kill(pid, signal.SIGKILL)
        response = await asyncio.wait_for(answer, 30)

    assert response.status_code == 200, response.text
    payloads = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    assert [json.loads(p)["choices"][0]["delta"]["content"] for p in payloads[:-1]] == ["tok0 ", "tok1 ", "tok2 "]
    assert response.headers[WORKER_HEADER] == survivor
    assert len(lab.fake_upstream.requests_for(model)) == 2  # the killed worker's call, and the survivor's
