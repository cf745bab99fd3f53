"""A remote worker's own metrics on ``BODHI_WORKER_METRICS_PORT``: its jobs by outcome, its providers' latency
and their errors by kind."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_API_KEY, RegisterUpstream, StartGateway
from tests.support.fake_upstream import FakeUpstream, Script, free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
MESSAGES = [{"role": "user", "content": "hi"}]


async def metrics_text(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as anonymous:
        return (await anonymous.get(url)).text


async def scrape(url: str) -> Samples:
    text = await metrics_text(url)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def until_finished(url: str, jobs: int, *, within: float = 5) -> Samples:
    """The metrics once ``jobs`` jobs have finished (a job ends just after its last event reached the client)."""
    deadline = time.monotonic() + within
    while True:
        found = await scrape(url)
        finished = sum(v for (name, _), v in found.items() if name == "bodhi_worker_jobs_finished_total")
        if finished >= jobs or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_a_remote_worker_counts_its_jobs_and_times_its_providers(
    start_gateway: StartGateway, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    port = free_port()
    own = start_gateway(BODHI_WORKER_METRICS_PORT=str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    model = await register_upstream(Script(chunks=3, delay=0.1))
    limited = await register_upstream(Script(status=429))
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=20) as http:
        streamed = await http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})
        refused = await http.post("/v1/chat/completions", json={"model": limited, "messages": MESSAGES})
        check = {"base_url": fake_upstream.base_url, "api_key": TEST_API_KEY}
        fetched = await http.post("/bodhi/v1/models/api/fetch-models", json=check)

    assert (streamed.status_code, refused.status_code, fetched.status_code) == (200, 429, 200)
    found = await until_finished(url, 3)
    assert value(found, "bodhi_worker_jobs_started_total", function="inference") == 2
    assert value(found, "bodhi_worker_jobs_finished_total", function="inference", outcome="ok") == 1
    assert value(found, "bodhi_worker_jobs_finished_total", function="inference", outcome="error") == 1
    assert value(found, "bodhi_worker_jobs_finished_total", function="fetch_models", outcome="ok") == 1
    assert value(found, "bodhi_worker_jobs_running", function="inference") == 0
    api_model = f"fake for {model}"
    assert value(found, "bodhi_worker_provider_first_byte_seconds_count", api_model=api_model) == 1
    assert value(found, "bodhi_worker_provider_seconds_count", api_model=api_model) == 1
    # The whole stream took its two delays; its first chunk came before them.
    total = value(found, "bodhi_worker_provider_seconds_sum", api_model=api_model)
    first = value(found, "bodhi_worker_provider_first_byte_seconds_sum", api_model=api_model)
    assert total >= 0.2 > first
    errors = {"api_model": f"fake for {limited}", "kind": "http_429"}
    assert value(found, "bodhi_worker_provider_errors_total", **errors) == 1
    assert value(found, "process_resident_memory_bytes") > 0
    assert TEST_API_KEY not in await metrics_text(url)
