"""Reading the SSE frames a translator produced, and serving them to the real SDK clients over a mock transport."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import openai


def parse_frames(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` for each frame; every frame must be exactly ``event: ...\\ndata: ...`` with both naming
    the same type."""
    assert raw.endswith(b"\n\n"), raw[-40:]
    frames = []
    for block in raw.decode().split("\n\n")[:-1]:
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: "), block
        assert data_line.startswith("data: "), block
        event, data = event_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))
        assert data["type"] == event
        frames.append((event, data))
    return frames


def _http_library(default_client: type) -> Any:
    """The HTTP library an SDK is built on: the SDKs moved from httpx to its fork httpx2 and refuse the other's
    objects, so a mock transport must come from the library of the SDK's own client class."""
    return importlib.import_module(default_client.__mro__[1].__module__.partition(".")[0])


OPENAI_HTTP = _http_library(openai.DefaultHttpxClient)
ANTHROPIC_HTTP = _http_library(anthropic.DefaultHttpxClient)


def _sse_response(body: bytes, http: Any) -> Any:
    def handle(request: Any) -> Any:
        return http.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return http.MockTransport(handle)


@contextmanager
def openai_client(body: bytes) -> Iterator[openai.OpenAI]:
    """An OpenAI client whose every request is answered with ``body`` as an event stream."""
    with OPENAI_HTTP.Client(transport=_sse_response(body, OPENAI_HTTP)) as http:
        yield openai.OpenAI(api_key="sk-test", base_url="http://bodhi.test/v1", http_client=http, max_retries=0)


@contextmanager
def anthropic_client(body: bytes) -> Iterator[anthropic.Anthropic]:
    with ANTHROPIC_HTTP.Client(transport=_sse_response(body, ANTHROPIC_HTTP)) as http:
        yield anthropic.Anthropic(api_key="sk-test", base_url="http://bodhi.test", http_client=http, max_retries=0)


def chunk(
    delta: dict[str, Any] | None = None, *, finish_reason: str | None = None, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` as providers send it; ``delta=None`` gives the usage-only last chunk (empty
    ``choices``) of ``stream_options.include_usage``."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "upstream-model",
        "choices": choices,
        "usage": usage,
    }


def tool_call_delta(
    index: int, *, call_id: str | None = None, name: str | None = None, arguments: str = ""
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call |= {"id": call_id, "type": "function"}
    if name is not None:
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def completion(
    message: dict[str, Any], *, finish_reason: str = "stop", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A non-streamed ``chat.completion``."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
        "usage": usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
