"""A local worker stopped with SIGTERM drains: it leaves its aliases' sets at once (the API stops sending), keeps
its heartbeat while the generation in flight finishes, and cuts only one still running after the drain timeout."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

from bodhi_shared.contract import EventKind, LocalModel
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND
from tests.bodhi_local_worker.conftest import LONG_ANSWER, LONG_CONTEXT, StartWorker
from tests.bodhi_local_worker.local_api import LocalApi, startup_line
from tests.support.tiny_gguf import EOS_ID

MESSAGES = [{"role": "user", "content": "Say hello."}]


def exit_code_within(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


async def test_a_generation_in_flight_finishes_after_sigterm(
    local_api: LocalApi, start_worker: StartWorker, tiny_model: Path
) -> None:
    alias = f"tiny-drain-{uuid.uuid4().hex[:6]}"
    process = start_worker("--models", alias, BODHI_DRAIN_TIMEOUT="30")
    worker_id, _, _ = await startup_line(process)
    await local_api.wait_for_alias_workers(alias, {worker_id})
    local = LocalModel(alias=alias, path=str(tiny_model), context_params=LONG_CONTEXT)
    # The end-of-text token forbidden: a few seconds of generation, well within the drain timeout.
    body = {"messages": MESSAGES, "max_tokens": LONG_ANSWER, "stream": True, "logit_bias": {str(EOS_ID): -100}}

    async with local_api.job(local, body) as events:
        started = await events.next(10)
        assert started is not None
        assert started.kind == EventKind.STARTED
        await events.next(0.5)  # generating
        process.popen.terminate()
        stopped_at = time.monotonic()
        await asyncio.to_thread(process.wait_for_log, "draining")
        serving_while_draining = await local_api.alias_workers(alias)
        beating_while_draining = await local_api.redis.zscore(local_api.keys.workers(LOCAL_WORKER_KIND), worker_id)
        rest = await events.until_end(within=30)
    ended_at = time.monotonic()
    exit_code = await asyncio.to_thread(exit_code_within, process.popen, 5)

    assert serving_while_draining == {}  # left at once: the API sends it nothing more
    # Still alive to the API, which watches the job's worker.
    assert beating_while_draining is not None, process.log_text()
    assert rest[-1].kind == EventKind.DONE, rest[-1]
    assert all(event.kind == EventKind.CHUNK for event in rest[:-1])
    assert exit_code == 0, process.log_text()
    assert time.monotonic() - ended_at < 5
    assert ended_at - stopped_at > 1  # the generation did outlast the signal


async def test_a_generation_longer_than_the_drain_timeout_is_cut_in_band(
    local_api: LocalApi, start_worker: StartWorker, tiny_model: Path
) -> None:
    alias = f"tiny-drain-cut-{uuid.uuid4().hex[:6]}"
    process = start_worker("--models", alias, BODHI_DRAIN_TIMEOUT="1")
    worker_id, _, _ = await startup_line(process)
    await local_api.wait_for_alias_workers(alias, {worker_id})
    local = LocalModel(alias=alias, path=str(tiny_model), context_params=LONG_CONTEXT)
    # The end-of-text token forbidden: these tokens take the tiny model longer than the drain.
    body = {"messages": MESSAGES, "max_tokens": LONG_ANSWER, "stream": True, "logit_bias": {str(EOS_ID): -100}}

    async with local_api.job(local, body) as events:
        started = await events.next(10)
        assert started is not None
        await events.next(0.5)
        process.popen.terminate()
        stopped_at = time.monotonic()
        rest = await events.until_end(within=10)
    ended_after = time.monotonic() - stopped_at
    exit_code = await asyncio.to_thread(exit_code_within, process.popen, 5)

    assert 0.8 <= ended_after < 3, ended_after
    assert rest[-1].kind == EventKind.ERROR
    assert rest[-1].status == 503
    assert exit_code == 0, process.log_text()
    assert await local_api.redis.zscore(local_api.keys.workers(LOCAL_WORKER_KIND), worker_id) is None
