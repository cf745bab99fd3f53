"""The provider adapter against the fake upstream (a real server on loopback)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bodhi_remote_worker.upstream import Provider, forward, stream_sse
from bodhi_shared.errors import (
    ProviderAuthenticationFailed,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from tests.support.fake_upstream import FakeUpstream, Script, free_port


async def test_stream_yields_each_data_payload_until_done(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["adapter-stream"] = Script(chunks=3)
    upstream = Provider(base_url=fake_upstream.base_url, api_key="k")
    async with httpx.AsyncClient() as client:
        payloads = [p async for p in stream_sse(client, upstream, b'{"model": "adapter-stream", "stream": true}')]

    assert len(payloads) == 3
    assert all(p.startswith(b"{") for p in payloads)


async def test_error_status_keeps_status_and_body(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["adapter-429"] = Script(status=429)
    upstream = Provider(base_url=fake_upstream.base_url, api_key="k")
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamHTTPError) as caught:
            await forward(client, upstream, b'{"model": "adapter-429"}')

    assert caught.value.status_code == 429
    assert b"scripted failure" in caught.value.to_json()


async def test_connection_refused_is_unreachable() -> None:
    upstream = Provider(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="k")
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamUnreachable, match="Network error"):
            await forward(client, upstream, b"{}")


async def test_slow_upstream_times_out(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["adapter-slow"] = Script(chunks=2, delay=2)
    upstream = Provider(base_url=fake_upstream.base_url, api_key="k")
    async with httpx.AsyncClient(timeout=0.5) as client:
        with pytest.raises(UpstreamTimeout):
            _ = [p async for p in stream_sse(client, upstream, b'{"model": "adapter-slow", "stream": true}')]


KEY = "sk-adapter-" + "s3cr3t" * 4


def named(fake_upstream: FakeUpstream, *, api_model_name: str = "Team OpenAI") -> Provider:
    return Provider(base_url=fake_upstream.base_url, api_key=KEY, api_model_name=api_model_name)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_provider_refusing_the_key_is_502_naming_the_api_model(
    fake_upstream: FakeUpstream, status: int, stream: bool
) -> None:
    model = f"adapter-{status}-{stream}"
    fake_upstream.scripts[model] = Script(status=status, echo_key=True)
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProviderAuthenticationFailed) as caught:
            await _call(client, named(fake_upstream), model, stream=stream)

    error = caught.value
    assert error.status_code == 502
    assert error.to_body()["error"]["type"] == "upstream_error"
    assert error.code == "provider_authentication_failed"
    assert "API model `Team OpenAI`" in error.message
    assert "An admin must update" in error.message
    assert KEY.encode() not in error.to_json()


async def test_an_unnamed_api_model_is_this_api_model(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["adapter-401-unnamed"] = Script(status=401)
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProviderAuthenticationFailed, match="this API model"):
            await _call(client, named(fake_upstream, api_model_name=""), "adapter-401-unnamed", stream=False)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_echoed_key_is_masked_in_a_relayed_error_body(fake_upstream: FakeUpstream, stream: bool) -> None:
    model = f"adapter-400-echo-{stream}"
    fake_upstream.scripts[model] = Script(status=400, echo_key=True)
    body = json.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": PASTED}]})
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamHTTPError) as caught:
            await _call(client, named(fake_upstream), model, stream=stream, body=body.encode())

    relayed = caught.value.to_json()
    assert caught.value.status_code == 400
    assert KEY.encode() not in relayed
    assert b"Bearer [redacted]" in relayed  # the provider's own words stay, the secret does not
    assert json.loads(relayed)["error"]["message"].startswith("scripted failure")


async def test_a_secret_the_request_carried_is_masked_in_an_error(fake_upstream: FakeUpstream) -> None:
    """Some providers quote the offending request; a key the client pasted into a message is cut out too."""
    quoted = {"error": {"message": f"bad request: {PASTED}", "type": "invalid_request_error", "code": None}}
    fake_upstream.scripts["adapter-quote"] = Script(status=422, error_body=quoted)
    body = json.dumps({"model": "adapter-quote", "messages": [{"role": "user", "content": PASTED}]}).encode()
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamHTTPError) as caught:
            await forward(client, named(fake_upstream), body)

    assert caught.value.status_code == 422
    assert PASTED_KEY.encode() not in caught.value.to_json()


async def test_an_in_band_error_is_masked(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["adapter-in-band"] = Script(chunks=3, error_after=1, echo_key=True)
    async with httpx.AsyncClient() as client:
        payloads = [p async for p in stream_sse(client, named(fake_upstream), _body("adapter-in-band", stream=True))]

    assert len(payloads) == 2
    assert json.loads(payloads[1])["error"]["code"] == "overloaded"
    assert KEY.encode() not in payloads[1]


@pytest.mark.parametrize("stream", [False, True])
async def test_retry_after_and_rate_limit_headers_come_with_the_error(
    fake_upstream: FakeUpstream, stream: bool
) -> None:
    model = f"adapter-429-headers-{stream}"
    headers = {"Retry-After": "7", "x-ratelimit-remaining-requests": "0", "Set-Cookie": "session=provider-side"}
    fake_upstream.scripts[model] = Script(status=429, error_headers=headers)
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamHTTPError) as caught:
            await _call(client, named(fake_upstream), model, stream=stream)

    assert caught.value.status_code == 429
    assert caught.value.headers == {"retry-after": "7", "x-ratelimit-remaining-requests": "0"}


@pytest.mark.parametrize("stream", [False, True])
async def test_the_client_request_id_goes_upstream(fake_upstream: FakeUpstream, stream: bool) -> None:
    model = f"adapter-request-id-{stream}"
    fake_upstream.scripts[model] = Script(chunks=1)
    async with httpx.AsyncClient() as client:
        await _call(client, named(fake_upstream), model, stream=stream, client_request_id="trace-abc.123")
        await _call(client, named(fake_upstream), model, stream=stream)

    with_id, without = fake_upstream.requests_for(model)
    assert with_id.headers["x-request-id"] == "trace-abc.123"
    assert "x-request-id" not in without.headers


PASTED_KEY = "sk-pasted-" + "z9" * 12
PASTED = f"my other key is {PASTED_KEY}, keep it safe"


def _body(model: str, *, stream: bool) -> bytes:
    return json.dumps({"model": model, "stream": stream}).encode()


async def _call(
    client: httpx.AsyncClient,
    provider: Provider,
    model: str,
    *,
    stream: bool,
    body: bytes | None = None,
    client_request_id: str | None = None,
) -> list[bytes]:
    sent = body or _body(model, stream=stream)
    if not stream:
        return [await forward(client, provider, sent, client_request_id=client_request_id)]
    return [p async for p in stream_sse(client, provider, sent, client_request_id=client_request_id)]


def event(payload: Any) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


CHUNK = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]}
LAST = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


async def stream_of(fake_upstream: FakeUpstream, model: str, script: Script, got: list[bytes] | None = None) -> None:
    """Stream ``model`` (scripted with ``script``) into ``got``."""
    fake_upstream.scripts[model] = script
    upstream = Provider(base_url=fake_upstream.base_url, api_key=KEY)
    body = json.dumps({"model": model, "stream": True}).encode()
    async with httpx.AsyncClient(timeout=5) as client:
        async for payload in stream_sse(client, upstream, body):
            if got is not None:
                got.append(payload)


async def test_comments_event_fields_and_crlf_are_valid_framing(fake_upstream: FakeUpstream) -> None:
    pieces = [
        b": keep-alive\r\n\r\n",
        b"event: message\r\nid: 1\r\n" + event(CHUNK).replace(b"\n", b"\r\n"),
        event(LAST),
    ]
    payloads: list[bytes] = []
    await stream_of(fake_upstream, "sse-framing", Script(raw_stream=[*pieces, b"data: [DONE]\n\n"]), payloads)

    assert [json.loads(p) for p in payloads] == [CHUNK, LAST]


async def test_a_stream_cut_after_its_finish_reason_is_complete_without_done(fake_upstream: FakeUpstream) -> None:
    payloads: list[bytes] = []
    await stream_of(fake_upstream, "sse-no-done", Script(raw_stream=[event(CHUNK), event(LAST)]), payloads)

    assert len(payloads) == 2


@pytest.mark.parametrize(
    ("name", "pieces", "says"),
    [
        ("sse-not-json", [event(CHUNK), b"data: <html>oops</html>\n\n", b"data: [DONE]\n\n"], "not a JSON object"),
        ("sse-truncated", [event(CHUNK), event(CHUNK)], "ended the stream early"),
    ],
)
async def test_a_malformed_stream_ends_with_a_clear_error(
    fake_upstream: FakeUpstream, name: str, pieces: list[bytes], says: str
) -> None:
    """Before, the garbage reached the client's SDK (a JSON decode error) and a cut stream ended as if complete."""
    got: list[bytes] = []
    with pytest.raises(UpstreamError) as caught:
        await stream_of(fake_upstream, name, Script(raw_stream=pieces), got)

    assert set(got) == {json.dumps(CHUNK).encode()}  # what came before the fault still went out
    assert caught.value.code == "upstream_malformed_stream"
    assert says in caught.value.message


async def test_a_stream_request_answered_with_a_web_page_is_an_error(fake_upstream: FakeUpstream) -> None:
    """Before, the page's lines were skipped and the client got an empty, successful stream."""
    script = Script(raw_stream=[b"<html><body>Sign in to the proxy</body></html>"], content_type="text/html")
    with pytest.raises(UpstreamError, match="answered a stream request with text/html") as caught:
        await stream_of(fake_upstream, "sse-html", script)
    assert caught.value.code == "upstream_malformed_stream"


def multi_line_event(payload: Any) -> bytes:
    """``payload`` as pretty-printed JSON, one ``data:`` line per line: valid SSE, joined with "\\n" by a reader."""
    lines = json.dumps(payload, indent=2).split("\n")
    return "".join(f"data: {line}\n" for line in lines).encode() + b"\n"


async def test_a_payload_over_several_data_lines_is_one_payload_on_one_line(fake_upstream: FakeUpstream) -> None:
    """Before, each `data:` line was read as an event of its own: `{` alone, not a JSON object."""
    payloads: list[bytes] = []
    raw = [multi_line_event(CHUNK), b'data: {\r\ndata: "choices": []}\r\n\r\n', event(LAST), b"data: [DONE]\n\n"]
    await stream_of(fake_upstream, "sse-multi-line", Script(raw_stream=raw), payloads)

    assert [json.loads(p) for p in payloads] == [CHUNK, {"choices": []}, LAST]
    assert not any(b"\n" in p or b"\r" in p for p in payloads)


async def test_a_one_line_payload_passes_through_byte_for_byte(fake_upstream: FakeUpstream) -> None:
    exact = b'{"choices" :[{"index":0,"delta":{"content":"\\u00e9t\\u00e9"},  "finish_reason":"stop"}]}'
    payloads: list[bytes] = []
    await stream_of(fake_upstream, "sse-exact", Script(raw_stream=[b"data: " + exact + b"\n\n"]), payloads)

    assert payloads == [exact]


async def test_two_events_without_the_blank_line_between_are_malformed(fake_upstream: FakeUpstream) -> None:
    """Valid SSE joins them into one event, `{...}\\n{...}`: not one JSON object, so a clear error."""
    raw = [f"data: {json.dumps(CHUNK)}\ndata: {json.dumps(LAST)}\n\n".encode(), b"data: [DONE]\n\n"]
    with pytest.raises(UpstreamError, match="not a JSON object") as caught:
        await stream_of(fake_upstream, "sse-no-blank-line", Script(raw_stream=raw))
    assert caught.value.code == "upstream_malformed_stream"


async def test_an_error_named_by_its_event_field_is_masked_and_ends_the_stream(fake_upstream: FakeUpstream) -> None:
    """Before, `event: error` was skipped: the payload went out unmasked and the stream then failed as cut short."""
    error = {"type": "overloaded", "message": f"busy; you sent {PASTED_KEY}"}
    raw = [event(CHUNK), b"event: error\n" + event(error)]
    fake_upstream.scripts["sse-error-event"] = Script(raw_stream=raw)
    body = json.dumps({"model": "sse-error-event", "stream": True, "note": PASTED}).encode()
    async with httpx.AsyncClient(timeout=5) as client:
        payloads = [p async for p in stream_sse(client, named(fake_upstream), body)]

    assert len(payloads) == 2
    assert PASTED_KEY.encode() not in payloads[1]
    assert json.loads(payloads[1])["type"] == "overloaded"
