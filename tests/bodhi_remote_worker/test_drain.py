"""A remote worker stopped with SIGTERM drains: it takes no new job, finishes the streams it runs, and cuts only
those still running after ``BODHI_DRAIN_TIMEOUT``, with an in-band error."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import Gateway, RegisterUpstream, StartGateway
from tests.support.backing import new_name
from tests.support.fake_upstream import Script
from tests.support.processes import BodhiProcess, wait_for_workers

MESSAGES = [{"role": "user", "content": "hi"}]
WORKER_HEADER = "x-bodhi-worker"


@dataclass
class Stream:
    """One streamed chat, read to its end while the test stops workers."""

    worker: str = ""  # the X-Bodhi-Worker that served it
    payloads: list[str] = field(default_factory=list)  # every `data:` payload, [DONE] included
    ended_at: float = 0.0
    first_chunk: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def errors(self) -> list[dict[str, object]]:
        return [json.loads(p)["error"] for p in self.payloads if p != "[DONE]" and "error" in json.loads(p)]


async def stream_chat(http: httpx.AsyncClient, model: str, into: Stream) -> Stream:
    body = {"model": model, "messages": MESSAGES, "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        into.worker = response.headers.get(WORKER_HEADER, "")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                into.payloads.append(line.removeprefix("data: "))
                into.first_chunk.set()
    into.ended_at = time.monotonic()
    return into


def pid_of(worker_id: str) -> int:
    """The process id inside a worker id (``remote-{host}-{pid}-{hex}``)."""
    return int(worker_id.rsplit("-", 2)[1])


def exit_code_within(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


async def test_a_stream_in_flight_finishes_when_its_worker_gets_sigterm(
    start_gateway: StartGateway, register_upstream: RegisterUpstream
) -> None:
    own = await asyncio.to_thread(start_gateway)
    assert own.worker is not None
    model = await register_upstream(Script(chunks=15, delay=0.2))  # about 3 s
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        stream = Stream()
        reading = asyncio.ensure_future(stream_chat(http, model, stream))
        await asyncio.wait_for(stream.first_chunk.wait(), 10)
        own.worker.popen.send_signal(signal.SIGTERM)
        await asyncio.wait_for(reading, 20)
    exit_code = await asyncio.to_thread(exit_code_within, own.worker.popen, 3)

    assert stream.errors == [], own.logs()
    assert stream.payloads[-1] == "[DONE]"
    assert len(stream.payloads) == 15 + 1  # every chunk reached the client
    assert exit_code == 0, own.worker.log_text()  # and the worker left soon after its last job


async def test_a_stream_longer_than_the_drain_timeout_ends_in_band_and_no_new_job_is_taken(
    start_gateway: StartGateway, register_upstream: RegisterUpstream
) -> None:
    own = await asyncio.to_thread(start_gateway, BODHI_DRAIN_TIMEOUT="1")
    assert own.worker is not None
    model = await register_upstream(Script(chunks=50, delay=0.2))  # about 10 s
    quick = await register_upstream(Script(chunks=1))
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        stream = Stream()
        reading = asyncio.ensure_future(stream_chat(http, model, stream))
        await asyncio.wait_for(stream.first_chunk.wait(), 10)
        own.worker.popen.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        await asyncio.to_thread(own.worker.wait_for_log, "draining")
        # Sent while the only worker drains: it must not take it, and the client hears so when that worker leaves.
        late = await http.post("/v1/chat/completions", json={"model": quick, "messages": MESSAGES})
        await asyncio.wait_for(reading, 20)
    exit_code = await asyncio.to_thread(exit_code_within, own.worker.popen, 3)

    assert 0.8 <= stream.ended_at - stopped_at < 3, stream.ended_at - stopped_at  # the drain ran, then ended it
    assert [error["code"] for error in stream.errors] == ["service_unavailable"]
    assert "stopped before it finished" in str(stream.errors[0]["message"])
    assert stream.payloads[-1] == "[DONE]"
    assert late.status_code == 503, late.text
    assert late.json()["error"]["code"] == "no_worker_available"
    assert exit_code == 0, own.worker.log_text()


async def test_a_request_sent_during_a_drain_is_served_by_another_worker(
    start_gateway: StartGateway, register_upstream: RegisterUpstream, scratch: Path
) -> None:
    own = await asyncio.to_thread(start_gateway)
    assert own.worker is not None
    second = BodhiProcess(["remote-worker"], env=own.env, log_path=scratch / f"{new_name('drain-second')}.log")
    try:
        await asyncio.to_thread(wait_for_workers, own.base_url, count=2)
        await drain_one_while_the_other_serves(own, second, register_upstream)
    finally:
        second.stop()


async def drain_one_while_the_other_serves(
    own: Gateway, second: BodhiProcess, register_upstream: RegisterUpstream
) -> None:
    assert own.worker is not None
    model = await register_upstream(Script(chunks=15, delay=0.2))
    quick = await register_upstream(Script(chunks=1))
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        stream = Stream()
        reading = asyncio.ensure_future(stream_chat(http, model, stream))
        await asyncio.wait_for(stream.first_chunk.wait(), 10)
        draining_pid = pid_of(stream.worker)
        draining, other = (own.worker, second) if draining_pid == own.worker.popen.pid else (second, own.worker)
        os.kill(draining_pid, signal.SIGTERM)
        await asyncio.to_thread(draining.wait_for_log, "draining")
        late = [await http.post("/v1/chat/completions", json={"model": quick, "messages": MESSAGES}) for _ in range(3)]
        await asyncio.wait_for(reading, 20)

    assert draining_pid in (own.worker.popen.pid, second.popen.pid)
    assert all(response.status_code == 200 for response in late), [r.text for r in late]
    assert {pid_of(response.headers[WORKER_HEADER]) for response in late} == {other.popen.pid}
    assert stream.errors == []
    assert stream.payloads[-1] == "[DONE]"


async def test_a_second_sigterm_ends_the_drain_at_once(
    start_gateway: StartGateway, register_upstream: RegisterUpstream
) -> None:
    own = await asyncio.to_thread(start_gateway)  # the default drain timeout: 30 s
    assert own.worker is not None
    model = await register_upstream(Script(chunks=50, delay=0.2))  # about 10 s
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        stream = Stream()
        reading = asyncio.ensure_future(stream_chat(http, model, stream))
        await asyncio.wait_for(stream.first_chunk.wait(), 10)
        own.worker.popen.send_signal(signal.SIGTERM)
        await asyncio.to_thread(own.worker.wait_for_log, "draining")
        assert not reading.done()  # draining
        own.worker.popen.send_signal(signal.SIGTERM)
        again_at = time.monotonic()
        await asyncio.wait_for(reading, 20)
    exit_code = await asyncio.to_thread(exit_code_within, own.worker.popen, 3)

    assert stream.ended_at - again_at < 1, stream.ended_at - again_at
    assert [error["code"] for error in stream.errors] == ["service_unavailable"]
    assert stream.payloads[-1] == "[DONE]"
    assert exit_code == 0, own.worker.log_text()
