"""What a team operating Bodhi reads: JSON logs whose every line of a request names it (in the API and in the
worker), one access line per request, and Prometheus metrics on a port of their own or, when asked, public."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_API_KEY, Gateway, RegisterUpstream, StartGateway
from tests.support.backing import new_name
from tests.support.fake_upstream import Script, free_port
from tests.support.processes import BodhiProcess, wait_for_workers, wait_until_serving

MESSAGES = [{"role": "user", "content": "hi"}]
JSON_FIELDS = {"timestamp", "level", "logger", "message"}


@dataclass
class Observed:
    gateway: Gateway
    metrics_url: str  # BODHI_METRICS_PORT's /metrics


@pytest.fixture(scope="module")
def observed(gateway: Gateway, scratch: Path) -> Iterator[Observed]:
    """An API and a remote worker logging JSON (at DEBUG, every library's lines too), with a metrics port."""
    port, metrics_port, prefix = free_port(), free_port(), new_name("bodhitest-observed")
    env = gateway.env | {
        "BODHI_PORT": str(port),
        "BODHI_REDIS_PREFIX": prefix,
        "BODHI_LOG_FORMAT": "json",
        "BODHI_METRICS_PORT": str(metrics_port),
    }
    api = BodhiProcess(["api"], env=env, log_path=scratch / f"{prefix}-api.log")
    worker = BodhiProcess(["remote-worker"], env=env, log_path=scratch / f"{prefix}-worker.log")
    own = Gateway(
        base_url=f"http://127.0.0.1:{port}",
        api=api,
        worker=worker,
        env=env,
        admin_username=gateway.admin_username,
        admin_token=gateway.admin_token,
    )
    try:
        wait_until_serving(own.base_url, api)
        wait_for_workers(own.base_url)
        yield Observed(gateway=own, metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        api.stop()
        worker.stop()


def json_lines(process: BodhiProcess) -> list[dict[str, Any]]:
    """Every line the process wrote, each parsed: one that is not a JSON object fails the test."""
    parsed = []
    for line in process.log_text().splitlines():
        if line.strip():
            entry = json.loads(line)  # raises on a line that is not JSON
            assert isinstance(entry, dict), line
            assert set(entry) >= JSON_FIELDS, line
            parsed.append(entry)
    return parsed


def access_lines(process: BodhiProcess, request_id: str) -> list[dict[str, Any]]:
    return [e for e in json_lines(process) if e["logger"] == "bodhi.access" and e.get("request_id") == request_id]


async def access_line(process: BodhiProcess, request_id: str, *, within: float = 5) -> dict[str, Any]:
    """The one access line of ``request_id`` (a stream's is written as its response ends)."""
    deadline = time.monotonic() + within
    while not (found := access_lines(process, request_id)):
        assert time.monotonic() < deadline, f"no access line for {request_id}:\n{process.log_text()[-3000:]}"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)  # a second one would have been written by now
    found = access_lines(process, request_id)
    assert len(found) == 1, found
    return found[0]


async def chat(http: httpx.AsyncClient, model: str, *, stream: bool) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    response = await http.post("/v1/chat/completions", json=body)
    await response.aread()
    return response


@pytest.fixture
async def http(observed: Observed) -> AsyncIterator[httpx.AsyncClient]:
    gateway = observed.gateway
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=gateway.auth_headers, timeout=20) as client:
        yield client


async def test_json_lines_of_a_chat_name_its_request_in_the_api_and_the_worker(
    observed: Observed, http: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=3))
    leaky = await register_upstream(Script(status=400, echo_key=True))  # a provider that repeats the key

    answered = await chat(http, model, stream=True)
    refused = await chat(http, leaky, stream=False)

    assert answered.status_code == 200, answered.text
    assert refused.status_code == 400, refused.text
    gateway = observed.gateway
    assert gateway.worker is not None
    for response in (answered, refused):
        request_id = response.headers["x-bodhi-request-id"]
        await access_line(gateway.api, request_id)
        api_lines = [e for e in json_lines(gateway.api) if e.get("request_id") == request_id]
        worker_lines = [e for e in json_lines(gateway.worker) if e.get("request_id") == request_id]
        assert api_lines
        assert worker_lines  # the job's own lines (arq's start and end of it at least)
        # Every line that mentions the request, in either process, carries its id as a field.
        for entry in json_lines(gateway.api) + json_lines(gateway.worker):
            if request_id in entry["message"]:
                assert entry.get("request_id") == request_id, entry
    uvicorn_lines = [e for e in json_lines(gateway.api) if e["logger"].startswith("uvicorn")]
    assert any("Application startup complete" in e["message"] for e in uvicorn_lines)  # uvicorn's own, as JSON
    assert not any(e["logger"] == "uvicorn.access" for e in json_lines(gateway.api))  # off: bodhi.access instead
    assert TEST_API_KEY not in gateway.logs()


async def test_the_access_line_names_what_an_operator_needs(
    observed: Observed, http: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    api = observed.gateway.api
    user_id = (await http.get("/bodhi/v1/user")).json()["id"]
    model = await register_upstream(Script(chunks=3))
    slow = await register_upstream(Script(chunks=4, delay=0.25))
    secret = f"query-secret-{uuid.uuid4().hex}"

    plain = await chat(http, model, stream=False)
    streamed = await chat(http, slow, stream=True)
    unknown = await chat(http, f"no-such-model-{uuid.uuid4().hex}", stream=False)
    async with httpx.AsyncClient(base_url=observed.gateway.base_url, timeout=10) as anonymous:
        refused = await anonymous.get(f"/bodhi/v1/models?api_key={secret}")

    line = await access_line(api, plain.headers["x-bodhi-request-id"])
    assert line["method"] == "POST"
    assert line["path"] == "/v1/chat/completions"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] > 0
    assert line["user_id"] == user_id
    assert line["model"] == model
    assert line["level"] == "INFO"
    # A stream's line is written when it ends: after its three delays.
    streamed_line = await access_line(api, streamed.headers["x-bodhi-request-id"])
    assert streamed_line["status"] == 200
    assert streamed_line["model"] == slow
    assert streamed_line["duration_ms"] >= 700
    # An error has its line too; a model nobody serves is named `unknown`, not by the client's string.
    assert unknown.status_code == 404
    unknown_line = await access_line(api, unknown.headers["x-bodhi-request-id"])
    assert (unknown_line["status"], unknown_line["model"], unknown_line["user_id"]) == (404, "unknown", user_id)
    # No credentials: no user; the query string is never logged.
    assert refused.status_code == 401
    refused_line = await access_line(api, refused.headers["x-bodhi-request-id"])
    assert refused_line["path"] == "/bodhi/v1/models"
    assert refused_line["status"] == 401
    assert "user_id" not in refused_line
    assert secret not in api.log_text()


async def get(url: str) -> httpx.Response:
    """``GET url`` with no credentials."""
    async with httpx.AsyncClient(timeout=10) as anonymous:
        return await anonymous.get(url)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_the_metrics_port_serves_without_a_token(observed: Observed, http: httpx.AsyncClient) -> None:
    await http.get("/ping")

    served = await get(observed.metrics_url)
    on_the_api = await get(f"{observed.gateway.base_url}/metrics")

    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/plain")
    found = samples(served.text)
    assert value(found, "bodhi_workers", kind="remote") == 1  # read from Redis at the scrape
    assert value(found, "process_resident_memory_bytes") > 0  # the process's own metrics
    assert value(found, "bodhi_http_requests_total", method="GET", route="/ping", code="200") >= 1
    assert on_the_api.status_code == 401  # the API's own /metrics still wants a user, by default


async def test_request_counters_are_labelled_by_api_model_and_status_code(
    observed: Observed, http: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=2))
    limited = await register_upstream(Script(status=429))
    asked_for = f"free-form-{uuid.uuid4().hex}"

    assert (await chat(http, model, stream=False)).status_code == 200
    assert (await chat(http, limited, stream=True)).status_code == 429
    assert (await chat(http, asked_for, stream=False)).status_code == 404
    assert (await http.get(f"/v1/models/{asked_for}")).status_code == 404

    text = (await get(observed.metrics_url)).text
    found = samples(text)
    ok = {"model": model, "api_model": f"fake for {model}", "status": "ok", "code": "200"}
    assert value(found, "bodhi_requests_total", **ok) == 1
    too_many = {"model": limited, "api_model": f"fake for {limited}", "status": "error", "code": "429"}
    assert value(found, "bodhi_requests_total", **too_many) == 1
    assert value(found, "bodhi_requests_total", model="unknown", api_model="unknown", status="error", code="404") >= 1
    route = "/v1/models/{model_id:path}"
    assert value(found, "bodhi_http_requests_total", method="GET", route=route, code="404") >= 1
    assert asked_for not in text  # a client's string is never a label


async def test_metrics_can_be_made_public(start_gateway: StartGateway) -> None:
    public = start_gateway(worker=False, BODHI_METRICS_PUBLIC="true")

    answered = await get(f"{public.base_url}/metrics")

    assert answered.status_code == 200
    assert "bodhi_active_streams" in answered.text
