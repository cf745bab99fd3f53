"""Local workers as real processes on the tiny generated GGUF, in a Redis namespace of this module's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bodhi_shared.contract import LocalModel
from bodhi_shared.queue import create_queue_pool
from bodhi_shared.redis_keys import RedisKeys
from tests.bodhi_local_worker.local_api import LocalApi, startup_line
from tests.support.backing import new_name
from tests.support.processes import BodhiProcess
from tests.support.tiny_gguf import write_tiny_llama_gguf

HEARTBEAT_TTL = 1.5
# A context with room for a long answer: 32768 cells, 8192 for each of the default 4 slots. LONG_ANSWER tokens, the
# end-of-text token forbidden, take the tiny model seconds even batched (each token attends to all before it).
LONG_CONTEXT = {"n_ctx": 32768}
LONG_ANSWER = 6000
ALIAS_A = "tiny-a"  # in the catalogue: served by worker A, which follows the catalogue
ALIAS_B = "tiny-b"  # not in the catalogue: served by worker B, started with --models tiny-b


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("local-models") / "tiny-llama.gguf")


@pytest.fixture(scope="module")
def local_env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = {
        "BODHI_REDIS_URL": redis_url,
        "BODHI_REDIS_PREFIX": new_name("bodhitest-local"),
        "BODHI_HOME": str(tmp_path_factory.mktemp("local-home")),
        "BODHI_HEARTBEAT_INTERVAL": "0.2",
        "BODHI_HEARTBEAT_TTL": str(HEARTBEAT_TTL),
        "BODHI_LOCAL_CATALOGUE_INTERVAL": "0.3",
    }
    yield env
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{env['BODHI_REDIS_PREFIX']}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
async def local_api(redis_url: str, local_env: dict[str, str]) -> AsyncIterator[LocalApi]:
    redis = Redis.from_url(redis_url)
    pool = await create_queue_pool(redis_url)
    yield LocalApi(redis=redis, pool=pool, keys=RedisKeys(local_env["BODHI_REDIS_PREFIX"]))
    await pool.aclose()
    await redis.aclose()


StartWorker = Callable[..., BodhiProcess]


@pytest.fixture(scope="module")
def start_worker(local_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartWorker]:
    """Start ``bodhi local-worker ARGS...`` (``env``: settings of its own); every one still running is stopped at
    the end of the module."""
    logs = tmp_path_factory.mktemp("local-worker-logs")
    started: list[BodhiProcess] = []

    def start(*args: str, **env: str) -> BodhiProcess:
        log_path = logs / f"worker-{len(started)}.log"
        process = BodhiProcess(["local-worker", *args], env=local_env | env, log_path=log_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@dataclass
class Workers:
    a: BodhiProcess
    a_id: str
    b: BodhiProcess
    b_id: str
    alias_a: LocalModel
    alias_b: LocalModel


@pytest.fixture(scope="module")
async def workers(local_api: LocalApi, start_worker: StartWorker, tiny_model: Path) -> Workers:
    # Room for the long generation the cancellation test stops.
    alias_a = await local_api.put_alias(ALIAS_A, str(tiny_model), LONG_CONTEXT)
    alias_b = LocalModel(alias=ALIAS_B, path=str(tiny_model), context_params={"n_ctx": 256})
    a, b = start_worker(), start_worker("--models", ALIAS_B)
    (a_id, _, _), (b_id, _, _) = await startup_line(a), await startup_line(b)
    await local_api.wait_for_alias_workers(ALIAS_A, {a_id})
    await local_api.wait_for_alias_workers(ALIAS_B, {b_id})
    return Workers(a=a, a_id=a_id, b=b, b_id=b_id, alias_a=alias_a, alias_b=alias_b)
