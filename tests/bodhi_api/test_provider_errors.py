"""What a client sees when a provider fails, misbehaves or sits where Bodhi must not connect: through real
processes (API -> Redis -> remote worker) to the fake upstream."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.conftest import TEST_API_KEY, Gateway, RegisterUpstream, StartGateway
from tests.support.fake_upstream import FakeUpstream, Script

MESSAGES = [{"role": "user", "content": "hi"}]
TEST_ROUTE = "/bodhi/v1/models/api/test"


def data_payloads(body: str) -> list[str]:
    return [line[len("data: ") :] for line in body.split("\n") if line.startswith("data: ")]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_provider_refusing_the_stored_key_is_502_for_an_admin_to_fix(
    gateway: Gateway, client: httpx.AsyncClient, register_upstream: RegisterUpstream, status: int
) -> None:
    """Not a 401: the OpenAI SDK would raise AuthenticationError as if the caller's Bodhi token were wrong."""
    model = await register_upstream(Script(status=status, echo_key=True))  # the provider repeats the key
    for stream in (False, True):
        response = await client.post(
            "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": stream}
        )

        assert response.status_code == 502
        error = response.json()["error"]
        assert error["type"] == "upstream_error"
        assert error["code"] == "provider_authentication_failed"
        assert f"API model `fake for {model}`" in error["message"]  # register_upstream's name for it
        assert "An admin must update" in error["message"]
        assert TEST_API_KEY not in response.text
    assert TEST_API_KEY not in gateway.logs()


@pytest.mark.parametrize("stream", [False, True])
async def test_an_echoed_key_is_masked_in_a_relayed_error(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, stream: bool
) -> None:
    model = await register_upstream(Script(status=400, echo_key=True))
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": stream})

    assert response.status_code == 400
    assert TEST_API_KEY not in response.text
    assert response.json()["error"]["message"] == "scripted failure (Bearer [redacted])"


async def test_an_echoed_key_is_masked_in_an_in_band_error(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=3, error_after=1, echo_key=True))
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})

    assert response.status_code == 200
    payloads = data_payloads(response.text)
    assert json.loads(payloads[1])["error"]["code"] == "overloaded"
    assert payloads[-1] == "[DONE]"
    assert TEST_API_KEY not in response.text


@pytest.mark.parametrize("stream", [False, True])
async def test_retry_after_and_rate_limit_headers_reach_the_client(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, stream: bool
) -> None:
    headers = {
        "Retry-After": "7",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "7s",
        "Set-Cookie": "provider-session=abc",  # not the client's business
    }
    model = await register_upstream(Script(status=429, error_headers=headers))
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": stream})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"] == "7s"
    assert "set-cookie" not in response.headers
    assert response.json()["error"]["message"] == "scripted failure"


async def test_a_redirect_is_an_error_never_followed(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(redirect_to="http://169.254.169.254/latest/meta-data/"))
    for stream in (False, True):
        response = await client.post(
            "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": stream}
        )

        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_redirect"
        assert "HTTP 307" in response.json()["error"]["message"]
    assert len(fake_upstream.requests_for(model)) == 2  # one each, no second hop


async def test_the_client_request_id_reaches_the_provider(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=1))
    trace = f"trace-{uuid.uuid4().hex[:12]}"
    response = await client.post(
        "/v1/chat/completions", json={"model": model, "messages": MESSAGES}, headers={"X-Request-Id": trace}
    )

    assert response.status_code == 200
    assert fake_upstream.requests_for(model)[-1].headers["x-request-id"] == trace


@pytest.mark.parametrize("stream", [False, True])
async def test_without_a_client_id_the_server_made_id_reaches_the_provider(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream, stream: bool
) -> None:
    """The id the client reads in X-Request-Id is the one the provider saw: one id to trace a call end to end."""
    model = await register_upstream(Script(chunks=1))
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": stream})

    assert response.status_code == 200
    assert fake_upstream.requests_for(model)[-1].headers.get("x-request-id") == response.headers["x-bodhi-request-id"]


async def test_loopback_behind_a_name_is_refused_when_the_worker_connects(
    start_gateway: StartGateway, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    """``localhost`` passes a check on save (a name), but the worker resolves it and refuses 127.0.0.1."""
    model = await register_upstream(Script(chunks=1), base_url=f"http://localhost:{fake_upstream.port}/v1")
    strict = start_gateway(BODHI_ALLOW_PRIVATE_UPSTREAMS="false")
    async with httpx.AsyncClient(base_url=strict.base_url, headers=strict.auth_headers, timeout=20) as http:
        for stream in (False, True):
            response = await http.post(
                "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": stream}
            )

            assert response.status_code == 502
            error = response.json()["error"]
            assert error["code"] == "upstream_address_refused"
            assert "localhost" in error["message"]
            assert "127.0.0.1 is a loopback address" in error["message"]
            assert "BODHI_ALLOW_PRIVATE_UPSTREAMS=true" in error["message"]
            assert TEST_API_KEY not in response.text
        tested = await http.post(
            TEST_ROUTE,
            json={"base_url": f"http://localhost:{fake_upstream.port}/v1", "api_key": TEST_API_KEY, "model": model},
        )

    assert tested.status_code == 200
    answer = tested.json()
    assert answer["success"] is False
    assert answer["error_code"] == "connection_failed"
    assert answer["error"].startswith("Connection failed: Bodhi does not connect to the provider at localhost")
    assert fake_upstream.requests_for(model) == []  # nothing reached the provider
    assert TEST_API_KEY not in strict.logs()


async def test_test_connection_gives_up_at_its_own_deadline(
    start_gateway: StartGateway, fake_upstream: FakeUpstream
) -> None:
    model = f"hang-{uuid.uuid4().hex[:8]}"
    fake_upstream.scripts[model] = Script(hang=True)
    quick = start_gateway(BODHI_PROVIDER_CHECK_TIMEOUT="2")
    async with httpx.AsyncClient(base_url=quick.base_url, headers=quick.auth_headers, timeout=60) as http:
        started = time.monotonic()
        tested = await http.post(
            TEST_ROUTE, json={"base_url": fake_upstream.base_url, "api_key": TEST_API_KEY, "model": model}
        )
        took = time.monotonic() - started

    assert tested.status_code == 200
    answer = tested.json()
    assert answer["success"] is False
    assert answer["error_code"] == "connection_failed"
    assert answer["error"] == "Connection failed: no answer from 127.0.0.1 within 2 s; gave up."
    assert took < 2 + 3  # the deadline, and a little for the queue on a busy machine; not the 300 s read timeout
    assert len(fake_upstream.requests_for(model)) == 1


async def test_a_malformed_provider_stream_ends_in_band_with_done(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    """A fault test through real processes: the client's SDK gets an error event and ``[DONE]``, never garbage."""
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
    raw = [f"data: {json.dumps(chunk)}\n\n".encode(), b"data: {truncated\n\n", b"data: [DONE]\n\n"]
    model = await register_upstream(Script(raw_stream=raw))
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})

    assert response.status_code == 200
    payloads = data_payloads(response.text)
    assert json.loads(payloads[0]) == chunk
    assert json.loads(payloads[1])["error"]["code"] == "upstream_malformed_stream"
    assert payloads[2:] == ["[DONE]"]
    assert "{truncated" not in response.text


async def test_a_stream_answered_with_a_web_page_is_502(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(raw_stream=[b"<html>login</html>"], content_type="text/html"))
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_malformed_stream"
