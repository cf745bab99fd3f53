"""The whole request path through real processes: API -> Redis queue -> remote worker -> fake upstream."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import TEST_API_KEY, Gateway, RegisterUpstream
from tests.support.fake_upstream import FakeUpstream, Script, chunk_text, free_port


async def test_openai_sdk_streams_chunks_as_they_arrive(
    gateway: Gateway, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    script = Script(chunks=5, delay=0.3)
    model = await register_upstream(script)
    client = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token)

    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received: list[str] = []
    first_at = None
    async for chunk in stream:
        if first_at is None:
            first_at = time.monotonic()
        received.append(chunk.choices[0].delta.content or "")
    await client.close()

    assert received == [chunk_text(script, i) for i in range(5)]
    sent = fake_upstream.requests_for(model)[0]
    assert first_at is not None
    # The upstream spends 1.2 s between its first and last chunk; the client had the first long before.
    assert first_at < sent.chunk_times[-1] - 0.8


async def test_stream_false_returns_one_chat_completion(gateway: Gateway, register_upstream: RegisterUpstream) -> None:
    script = Script(chunks=4)
    model = await register_upstream(script)
    client = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token)

    completion = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    await client.close()

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "".join(chunk_text(script, i) for i in range(4))


async def test_request_reaches_upstream_with_key_and_fields(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream()
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.25,
        "some_unknown_field": {"kept": True},
    }
    response = await client.post("/v1/chat/completions", json=body)

    assert response.status_code == 200
    seen = fake_upstream.requests_for(model)[0]
    assert seen.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert seen.body == body


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"messages": []}', 400, "model"),
        (b'{"model": 42, "messages": []}', 400, "model"),
    ],
)
def test_malformed_requests_get_400_in_openai_shape(
    gateway: Gateway, content: bytes, status: int, param: str | None
) -> None:
    response = httpx.post(
        f"{gateway.openai_base_url}/chat/completions",
        content=content,
        headers={"Content-Type": "application/json", **gateway.auth_headers},
        timeout=10,
    )

    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_unknown_model_is_404_with_a_hint(client: httpx.AsyncClient, register_upstream: RegisterUpstream) -> None:
    model = await register_upstream(model="gpt-hint-target-4o")
    response = await client.post("/v1/chat/completions", json={"model": "gpt-hint-target-4", "messages": []})

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert f"Did you mean `{model}`?" in error["message"]


def test_unknown_model_without_close_name_has_no_hint(gateway: Gateway) -> None:
    response = httpx.post(
        f"{gateway.openai_base_url}/chat/completions",
        timeout=10,
        headers=gateway.auth_headers,
        json={"model": "zzzz-nothing-like-it", "messages": []},
    )

    assert response.status_code == 404
    assert "Did you mean" not in response.json()["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_error_before_first_byte_keeps_status_and_body(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, stream: bool
) -> None:
    # A provider's 401/403 is not relayed (tests/bodhi_api/test_provider_errors.py): any other status is.
    upstream_error = {
        "error": {
            "message": "Invalid 'messages': empty array.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "empty_array",
        }
    }
    model = await register_upstream(Script(status=400, error_body=upstream_error))
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": [], "stream": stream})

    assert response.status_code == 400
    assert response.json() == upstream_error


async def test_unreachable_upstream_is_502(client: httpx.AsyncClient, register_upstream: RegisterUpstream) -> None:
    model = await register_upstream(base_url=f"http://127.0.0.1:{free_port()}/v1")
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": []})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


def test_unknown_route_is_404_in_openai_shape(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.base_url}/v1/nothing-here", timeout=10)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_request_id_is_echoed_or_generated(gateway: Gateway) -> None:
    echoed = httpx.get(f"{gateway.base_url}/ping", headers={"X-Request-Id": "req-abc.123"}, timeout=10)
    generated = httpx.get(f"{gateway.base_url}/ping", timeout=10)

    assert echoed.headers["x-request-id"] == "req-abc.123"
    assert len(generated.headers["x-request-id"]) == 32


def test_health_reports_dependencies_and_workers(gateway: Gateway) -> None:
    health = httpx.get(f"{gateway.base_url}/health", timeout=10)

    assert health.status_code == 200
    assert health.json() | {"workers": None, "slots": None} == {
        "status": "ok",
        "postgres": "ok",
        "redis": "ok",
        "listeners": {"stream hub": "up"},
        "workers": None,
        "slots": None,
    }
    assert health.json()["workers"]["remote"] >= 1


async def test_the_key_never_reaches_logs(
    gateway: Gateway, client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(status=401))
    await client.post("/v1/chat/completions", json={"model": model, "messages": []})

    assert TEST_API_KEY not in gateway.logs()
