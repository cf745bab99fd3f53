"""Provider streams in every valid SSE framing reach the client as one event per payload, one `data:` line each:
through real processes (API -> Redis -> remote worker) to the fake upstream."""

from __future__ import annotations

import json

import httpx
import openai

from tests.conftest import Gateway, RegisterUpstream
from tests.support.fake_upstream import Script

MESSAGES = [{"role": "user", "content": "hi"}]


def chunk(content: str, finish_reason: str | None = None) -> dict[str, object]:
    delta = {"content": content} if content else {}
    return {
        "id": "chatcmpl-framing",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def over_lines(payload: object, *, end: str = "\n") -> bytes:
    """``payload`` pretty-printed, one `data:` line per line of it (valid SSE: a reader joins them with "\\n")."""
    lines = json.dumps(payload, indent=2).split("\n")
    return ("".join(f"data: {line}{end}" for line in lines) + end).encode()


RAW = [
    b": keep-alive\n\n",
    over_lines(chunk("multi ")),
    b"event: message\r\nid: 7\r\n" + over_lines(chunk("crlf "), end="\r\n"),
    f"data: {json.dumps(chunk('one-line'))}\n\n".encode(),
    over_lines(chunk("", "stop")),
    b"data: [DONE]\n\n",
]


async def test_a_payload_over_several_data_lines_reaches_the_client_as_one_event(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    """Before, each `data:` line was an event of its own (`{`): the client got an error event instead."""
    model = await register_upstream(Script(raw_stream=RAW))
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})

    assert response.status_code == 200
    lines = [line for line in response.text.split("\n") if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(line[len("data: ") :]) for line in lines[:-1]]  # each a whole JSON object on one line
    assert [p["choices"][0]["delta"].get("content") for p in payloads] == ["multi ", "crlf ", "one-line", None]
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"
    assert "error" not in response.text


async def test_the_openai_sdk_reads_a_multi_line_stream(gateway: Gateway, register_upstream: RegisterUpstream) -> None:
    model = await register_upstream(Script(raw_stream=RAW))
    sdk = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token)
    try:
        stream = await sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    finally:
        await sdk.close()

    assert text == "multi crlf one-line"
