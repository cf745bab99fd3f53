"""Local GGUF models end to end: the API routes a local alias to a local worker that serves it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from redis.asyncio import Redis

from bodhi_shared.redis_keys import RedisKeys
from tests.conftest import Gateway
from tests.support.processes import BodhiProcess
from tests.support.tiny_gguf import write_tiny_llama_gguf

ALIASES = "/bodhi/v1/models/alias"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("local-models")
    return (
        write_tiny_llama_gguf(folder / "one.gguf", seed=1).resolve(),
        write_tiny_llama_gguf(folder / "two.gguf", seed=2).resolve(),
    )


class LocalWorkers:
    """Local workers started for one test, stopped at its end."""

    def __init__(self, gateway: Gateway, scratch: Path) -> None:
        self.gateway, self.scratch = gateway, scratch
        self.started: list[BodhiProcess] = []

    def start(self, *aliases: str) -> BodhiProcess:
        """A worker serving ``aliases``; none: one that follows the catalogue."""
        name = f"local-{uuid.uuid4().hex[:6]}"
        models = ["--models", ",".join(aliases)] if aliases else []
        worker = BodhiProcess(["local-worker", *models], env=self.gateway.env, log_path=self.scratch / f"{name}.log")
        self.started.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def local_workers(gateway: Gateway, scratch: Path) -> Iterator[LocalWorkers]:
    workers = LocalWorkers(gateway, scratch)
    yield workers
    workers.stop()


async def add_alias(client: httpx.AsyncClient, path: Path) -> str:
    alias = f"tiny-{uuid.uuid4().hex[:6]}"
    created = await client.post(
        ALIASES,
        json={"alias": alias, "path": str(path), "context_params": {"n_ctx": 256}, "request_params": {"max_tokens": 8}},
    )
    assert created.status_code == 201, created.text
    return alias


@pytest.fixture
async def redis_keys(gateway: Gateway, redis_url: str) -> AsyncIterator[tuple[Redis, RedisKeys]]:
    redis = Redis.from_url(redis_url)
    yield redis, RedisKeys(gateway.env["BODHI_REDIS_PREFIX"])
    await redis.aclose()


async def wait_until_serving(redis: Redis, keys: RedisKeys, alias: str, worker: BodhiProcess) -> None:
    """Until ``worker`` is in the alias's worker set (its id holds its pid)."""
    deadline = time.monotonic() + 30
    while not any(f"-{worker.popen.pid}-" in m.decode() for m in await redis.zrange(keys.alias_workers(alias), 0, -1)):
        assert worker.popen.poll() is None, worker.log_text()
        assert time.monotonic() < deadline, worker.log_text()
        await asyncio.sleep(0.05)


async def served_by(client: httpx.AsyncClient, alias: str, *, wait_s: float = 30) -> httpx.Response:
    """A chat request for ``alias``, retried while no worker serving it is up yet."""
    deadline = time.monotonic() + wait_s
    while True:
        response = await client.post(
            "/v1/chat/completions", json={"model": alias, "messages": [{"role": "user", "content": "hi"}]}
        )
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_openai_sdk_streams_and_embeds_with_a_local_gguf(
    gateway: Gateway, client: httpx.AsyncClient, local_workers: LocalWorkers, tiny_models: tuple[Path, Path]
) -> None:
    alias = await add_alias(client, tiny_models[0])
    local_workers.start(alias)
    assert (await served_by(client, alias)).status_code == 200

    sdk = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token)
    try:
        stream = await sdk.chat.completions.create(
            model=alias,
            messages=[{"role": "user", "content": "Say hello."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        embedded = await sdk.embeddings.create(model=alias, input=["one", "two"])
    finally:
        await sdk.close()

    assert chunks
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens <= 8  # the alias's max_tokens applied
    assert len(embedded.data) == 2
    assert len(embedded.data[0].embedding) == 64


async def test_each_request_lands_on_a_worker_serving_its_alias(
    client: httpx.AsyncClient, local_workers: LocalWorkers, tiny_models: tuple[Path, Path]
) -> None:
    first, second = await add_alias(client, tiny_models[0]), await add_alias(client, tiny_models[1])
    worker_one, worker_two = local_workers.start(first), local_workers.start(second)
    answers = {alias: await served_by(client, alias) for alias in (first, second)}
    for alias in (first, second):
        for _ in range(2):
            answers[alias] = await served_by(client, alias)
            assert answers[alias].status_code == 200, answers[alias].text

    serving_one = answers[first].headers["x-bodhi-worker"]
    serving_two = answers[second].headers["x-bodhi-worker"]
    assert serving_one != serving_two
    assert f"-{worker_one.popen.pid}-" in serving_one
    assert f"-{worker_two.popen.pid}-" in serving_two


async def test_killing_the_only_worker_gives_503_until_one_comes_back(
    client: httpx.AsyncClient, local_workers: LocalWorkers, tiny_models: tuple[Path, Path]
) -> None:
    alias = await add_alias(client, tiny_models[0])
    worker = local_workers.start(alias)
    assert (await served_by(client, alias)).status_code == 200

    os.kill(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait()
    killed_at = time.monotonic()
    while (
        response := await client.post("/v1/chat/completions", json={"model": alias, "messages": []})
    ).status_code != 503:
        assert time.monotonic() - killed_at < 10, "the dead worker was still considered alive"
        await asyncio.sleep(0.2)
    assert alias in response.json()["error"]["message"]

    local_workers.start(alias)
    assert (await served_by(client, alias)).status_code == 200


CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def test_a_new_alias_is_served_at_once_by_a_worker_that_follows_the_catalogue(
    client: httpx.AsyncClient,
    local_workers: LocalWorkers,
    tiny_models: tuple[Path, Path],
    redis_keys: tuple[Redis, RedisKeys],
) -> None:
    redis, keys = redis_keys
    existing = await add_alias(client, tiny_models[0])
    follower = local_workers.start()
    await wait_until_serving(redis, keys, existing, follower)  # it has read the catalogue once

    alias = await add_alias(client, tiny_models[1])
    response = await client.post("/v1/chat/completions", json={"model": alias, **CHAT})  # at once: no sleep, no retry

    assert response.status_code == 200, response.text
    assert f"-{follower.popen.pid}-" in response.headers["x-bodhi-worker"]
    assert (await client.delete(f"{ALIASES}/{alias}")).status_code == 204
    assert await asyncio.to_thread(follower.stop) == 0
    assert not await redis.zrange(keys.local_followers, 0, -1)  # a stopped follower leaves at once


async def test_an_alias_a_follower_does_not_take_up_is_a_503_that_says_so(
    client: httpx.AsyncClient, tiny_models: tuple[Path, Path], redis_keys: tuple[Redis, RedisKeys]
) -> None:
    redis, keys = redis_keys
    alias = await add_alias(client, tiny_models[0])
    # A follower that beats but never starts serving (in life: stuck, or it refused the catalogue entry).
    await redis.zadd(keys.local_followers, {"local-stuck-follower": time.time() + 30})
    try:
        asked = time.monotonic()
        response = await client.post("/v1/chat/completions", json={"model": alias, **CHAT})
        waited = time.monotonic() - asked
    finally:
        await redis.zrem(keys.local_followers, "local-stuck-follower")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_worker_available"
    assert (
        f"`{alias}`: a local worker follows the catalogue but has not started serving it within 5 s"
        in (error["message"])
    )
    assert "log" in error["message"]
    assert 4.5 < waited < 10  # bounded
