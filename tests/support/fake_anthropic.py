"""A small, real Anthropic Messages server on loopback (``POST /v1/messages``, streamed or not; ``GET /v1/models``),
scripted per model by the tests; it records every request with its headers.

It answers as Anthropic does: ``x-api-key`` and ``anthropic-version`` required (401 / 400 otherwise, in
Anthropic's error shape), ``max_tokens`` required, a tool_use answer when the request offers tools and its last
turn is not a tool result (a text answer after one: a tool round trip), the stream's events in Anthropic's order
(message_start, content blocks with ping, message_delta with the stop reason and output tokens, message_stop),
and the model list in pages (``limit``, ``after_id``, ``has_more``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.loopback_server import LoopbackServer

TOOL_ID = "toolu_fake01"
TOOL_NAME = "get_weather"
TOOL_INPUT = {"city": "Paris"}
MESSAGE_ID = "msg_fake01"


@dataclass
class AnthropicScript:
    """How the fake answers one model."""

    pieces: list[str] = field(default_factory=lambda: ["Hello", " from", " Claude"])
    stop_reason: str = "end_turn"
    status: int = 200
    error_type: str = "api_error"  # of a scripted error status
    error_after: int | None = None  # a stream sends an `error` event (overloaded) after this many text deltas
    input_tokens: int = 12
    output_tokens: int = 7
    cache_read_input_tokens: int = 0


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: dict[str, str] = field(default_factory=dict)


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


def wants_tool(body: dict[str, Any]) -> bool:
    """A tool call when tools are offered and the conversation does not end with a tool's result."""
    if not body.get("tools"):
        return False
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content")
    return not (isinstance(content, list) and any(block.get("type") == "tool_result" for block in content))


def usage_of(script: AnthropicScript, *, output: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": script.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": script.cache_read_input_tokens,
        "output_tokens": script.output_tokens if output is None else output,
    }


def message_body(model: str, script: AnthropicScript, *, tool: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": "".join(script.pieces)}]
    if tool:
        content = [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": TOOL_ID, "name": TOOL_NAME, "input": TOOL_INPUT},
        ]
    return {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if tool else script.stop_reason,
        "stop_sequence": None,
        "usage": usage_of(script),
    }


def message_events(model: str, script: AnthropicScript, *, tool: bool) -> list[tuple[str, dict[str, Any]]]:
    """The events of a streamed answer, as Anthropic sends them."""
    start = message_body(model, script, tool=tool) | {"content": [], "stop_reason": None}
    start["usage"] = usage_of(script, output=1)
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": _text_block()}),
        ("ping", {"type": "ping"}),
    ]
    pieces = ["Let me check."] if tool else script.pieces
    for i, piece in enumerate(pieces):
        if script.error_after is not None and i == script.error_after:
            return [*events, ("error", error_body("overloaded_error", "Overloaded"))]
        text = {"type": "text_delta", "text": piece}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": text}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    if tool:
        events += _tool_events(index=1)
    delta: dict[str, Any] = {"stop_reason": "tool_use" if tool else script.stop_reason, "stop_sequence": None}
    usage = {"output_tokens": script.output_tokens}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _text_block() -> dict[str, Any]:
    return {"type": "text", "text": ""}


def _tool_events(*, index: int) -> list[tuple[str, dict[str, Any]]]:
    block = {"type": "tool_use", "id": TOOL_ID, "name": TOOL_NAME, "input": {}}
    arguments = json.dumps(TOOL_INPUT)
    events: list[tuple[str, dict[str, Any]]] = [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
    ]
    for piece in ("", arguments[:9], arguments[9:]):  # Anthropic's first input_json_delta is often empty
        delta = {"type": "input_json_delta", "partial_json": piece}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def sse(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


class FakeAnthropic(LoopbackServer):
    """Set ``scripts[model]``, ``models`` (listed), ``required_key``; read ``requests`` and ``model_list_requests``."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, AnthropicScript] = {}
        self.requests: list[Recorded] = []
        self.model_list_requests: list[Recorded] = []
        self.models: list[str] = []
        self.required_key: str | None = None  # set: any other x-api-key gets a 401; None: any key, or none

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self._messages, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ]

    def requests_for(self, model: str) -> list[Recorded]:
        return [r for r in self.requests if r.body.get("model") == model]

    def _refusal(self, request: Request) -> Response | None:
        # Anthropic takes the key in x-api-key (what Bodhi sends) or, since its newer SDKs, as a bearer token.
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.required_key is not None and key != self.required_key:
            return JSONResponse(error_body("authentication_error", "invalid x-api-key"), status_code=401)
        if not request.headers.get("anthropic-version"):
            message = "anthropic-version: header is required"
            return JSONResponse(error_body("invalid_request_error", message), status_code=400)
        return None

    async def _messages(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append(Recorded(path=request.url.path, headers=dict(request.headers), body=body))
        if (refused := self._refusal(request)) is not None:
            return refused
        model = str(body.get("model"))
        if not isinstance(body.get("max_tokens"), int):
            return JSONResponse(error_body("invalid_request_error", "max_tokens: Field required"), status_code=400)
        script = self.scripts.get(model)
        if script is None:
            return JSONResponse(error_body("not_found_error", f"model: {model}"), status_code=404)
        if script.status >= 400:
            return JSONResponse(error_body(script.error_type, "scripted failure"), status_code=script.status)
        tool = wants_tool(body)
        if body.get("stream"):
            return StreamingResponse(
                self._stream(message_events(model, script, tool=tool)), media_type="text/event-stream"
            )
        return JSONResponse(message_body(model, script, tool=tool))

    @staticmethod
    async def _stream(events: list[tuple[str, dict[str, Any]]]) -> AsyncIterator[bytes]:
        for event in events:
            yield sse([event])

    async def _models(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.model_list_requests.append(
            Recorded(path=request.url.path, headers=dict(request.headers), body={}, query=query)
        )
        if (refused := self._refusal(request)) is not None:
            return refused
        limit = int(query.get("limit", "20"))
        start = self.models.index(query["after_id"]) + 1 if "after_id" in query else 0
        page = self.models[start : start + limit]
        data = [
            {"type": "model", "id": m, "display_name": m.title(), "created_at": "2025-02-19T00:00:00Z"} for m in page
        ]
        return JSONResponse(
            {
                "data": data,
                "has_more": start + limit < len(self.models),
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            }
        )
