"""A local worker's own metrics on ``BODHI_WORKER_METRICS_PORT`` (tokens generated and the seconds it took, its
loaded models, its jobs), and its JSON lines, each line of a job naming the job's request."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bodhi_shared.contract import LocalModel
from tests.bodhi_local_worker.conftest import StartWorker
from tests.bodhi_local_worker.local_api import LocalApi, startup_line
from tests.support.fake_upstream import free_port

ALIAS = "tiny-metrics"
MESSAGES = [{"role": "user", "content": "Say hello."}]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as anonymous:
        text = (await anonymous.get(url)).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def until(url: str, name: str, at_least: float, *, within: float = 5, **labels: str) -> Samples:
    deadline = time.monotonic() + within
    while True:
        found = await scrape(url)
        if value(found, name, **labels) >= at_least or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_a_local_worker_counts_tokens_generation_time_and_loaded_models(
    local_api: LocalApi, start_worker: StartWorker, tiny_model: Path
) -> None:
    port = free_port()
    worker = start_worker("--models", ALIAS, BODHI_WORKER_METRICS_PORT=str(port), BODHI_LOG_FORMAT="json")
    worker_id, _, _ = await startup_line(worker)
    await local_api.wait_for_alias_workers(ALIAS, {worker_id})
    url = f"http://127.0.0.1:{port}/metrics"
    local = LocalModel(alias=ALIAS, path=str(tiny_model), context_params={"n_ctx": 256})
    assert value(await scrape(url), "bodhi_worker_loaded_models") == 0

    streamed = await local_api.run(local, {"messages": MESSAGES, "max_tokens": 6, "stream": True})
    plain = await local_api.run(local, {"messages": MESSAGES, "max_tokens": 6})

    generated = sum(int((events[-1].usage or {})["completion_tokens"]) for events in (streamed, plain))
    assert generated >= 2
    found = await until(url, "bodhi_worker_jobs_finished_total", 2, function="inference", outcome="ok")
    assert value(found, "bodhi_worker_jobs_finished_total", function="inference", outcome="ok") == 2
    assert value(found, "bodhi_worker_generated_tokens_total", alias=ALIAS) == generated
    assert value(found, "bodhi_worker_generation_seconds_total", alias=ALIAS) > 0
    assert value(found, "bodhi_worker_loaded_models") == 1
    # Its lines are JSON; those of a job, the model's loading included (in a thread), name the job's request.
    lines: list[dict[str, Any]] = [json.loads(line) for line in worker.log_text().splitlines() if line.strip()]
    first = streamed[0].request_id
    of_first = [line for line in lines if line.get("request_id") == first]
    assert any(line["message"].startswith("loaded ") for line in of_first), of_first
    assert any(line["logger"] == "arq.worker" for line in of_first)
    assert any(line.get("request_id") == plain[0].request_id for line in lines)
