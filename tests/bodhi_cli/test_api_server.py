"""``bodhi api`` stopped with SIGTERM drains: it stops accepting, lets its streams finish for up to
``BODHI_DRAIN_TIMEOUT``, then ends the rest with a complete error response (in-band for a stream), never a cut."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import httpx

from tests.conftest import RegisterUpstream, StartGateway
from tests.support.fake_upstream import FakeUpstream, Script

MESSAGES = [{"role": "user", "content": "hi"}]


async def stream_payloads(http: httpx.AsyncClient, model: str, first: asyncio.Event) -> list[str]:
    payloads = []
    body = {"model": model, "messages": MESSAGES, "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                payloads.append(line.removeprefix("data: "))
                first.set()
    return payloads


def exit_code_within(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


async def test_a_stream_in_flight_finishes_when_the_api_gets_sigterm_and_new_connections_are_refused(
    start_gateway: StartGateway, register_upstream: RegisterUpstream
) -> None:
    own = await asyncio.to_thread(start_gateway)
    model = await register_upstream(Script(chunks=15, delay=0.2))  # about 3 s
    first = asyncio.Event()
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        reading = asyncio.ensure_future(stream_payloads(http, model, first))
        await asyncio.wait_for(first.wait(), 10)
        own.api.popen.send_signal(signal.SIGTERM)
        await asyncio.to_thread(own.api.wait_for_log, "Shutting down")  # uvicorn closes its sockets right after
        try:
            async with httpx.AsyncClient(base_url=own.base_url, timeout=2) as fresh:
                refused: BaseException | None = None
                await fresh.get("/ping")
        except httpx.ConnectError as exc:
            refused = exc
        payloads = await asyncio.wait_for(reading, 20)
    exit_code = await asyncio.to_thread(exit_code_within, own.api.popen, 5)

    assert refused is not None  # no longer accepting
    assert payloads[-1] == "[DONE]"
    assert len(payloads) == 15 + 1
    assert not any("error" in payload for payload in payloads)
    assert exit_code is not None, own.api.log_text()


async def test_past_the_drain_timeout_a_stream_ends_in_band_and_a_waiting_request_gets_503(
    start_gateway: StartGateway, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    own = await asyncio.to_thread(start_gateway, BODHI_DRAIN_TIMEOUT="1")
    model = await register_upstream(Script(chunks=50, delay=0.2))  # about 10 s
    slow = await register_upstream(Script(chunks=1, latency=10))  # a non-streamed answer 10 s away
    first = asyncio.Event()
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        reading = asyncio.ensure_future(stream_payloads(http, model, first))
        waiting = asyncio.ensure_future(http.post("/v1/chat/completions", json={"model": slow, "messages": MESSAGES}))
        await asyncio.wait_for(first.wait(), 10)
        await fake_upstream.has_seen(slow)  # the slow request is with the worker
        own.api.popen.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        payloads = await asyncio.wait_for(reading, 20)  # a cut would raise httpx.RemoteProtocolError here
        ended_after = time.monotonic() - stopped_at
        answered = await asyncio.wait_for(waiting, 20)
    exit_code = await asyncio.to_thread(exit_code_within, own.api.popen, 5)

    assert 0.8 <= ended_after < 3, ended_after
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["error"]["code"] == "replica_stopping"
    assert answered.status_code == 503, answered.text
    assert answered.json()["error"]["code"] == "replica_stopping"
    assert exit_code is not None, own.api.log_text()


async def test_past_the_drain_timeout_responses_and_messages_streams_end_in_their_own_format(
    start_gateway: StartGateway, register_upstream: RegisterUpstream
) -> None:
    own = await asyncio.to_thread(start_gateway, BODHI_DRAIN_TIMEOUT="1")
    model = await register_upstream(Script(chunks=50, delay=0.2))  # about 10 s
    started = asyncio.Event()

    async def frames(path: str, body: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
        found = []
        async with http.stream("POST", path, json={"model": model, "stream": True, **body}) as response:
            assert response.status_code == 200, await response.aread()
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    found.append((event, json.loads(line.removeprefix("data: "))))
                    started.set()
        return found

    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        responses = asyncio.ensure_future(frames("/v1/responses", {"input": "hi"}))
        messages = asyncio.ensure_future(frames("/v1/messages", {"max_tokens": 64, "messages": MESSAGES}))
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(0.5)  # both under way
        own.api.popen.send_signal(signal.SIGTERM)
        responded, messaged = await asyncio.wait_for(asyncio.gather(responses, messages), 20)

    event, failed = responded[-1]
    assert event == "response.failed"
    assert failed["sequence_number"] == responded[-2][1]["sequence_number"] + 1  # type: ignore[operator]
    assert failed["response"]["error"]["message"].startswith("This gateway replica is shutting down")  # type: ignore[index]
    event, error = messaged[-1]
    assert event == "error"
    assert error == {"type": "error", "error": {"type": "overloaded_error", "message": error["error"]["message"]}}  # type: ignore[index]
    assert all(name != "message_stop" for name, _ in messaged)
