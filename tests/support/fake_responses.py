"""A small, real OpenAI Responses API server on loopback (``POST /v1/responses``, streamed or not; ``GET
/v1/models``), scripted per model by the tests; it records every request with its headers.

It answers as the Responses API does: a bearer key (when ``required_key`` is set), a function_call item when the
request offers tools and its input does not end with a function_call_output (a text answer after one), the
stream's events in OpenAI's order with sequence numbers (response.created, output items and content parts with
their deltas and ``.done`` events, response.completed with the usage), and errors in OpenAI's shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.fake_anthropic import Recorded
from tests.support.loopback_server import LoopbackServer

RESPONSE_ID = "resp_fake01"
MESSAGE_ITEM_ID = "msg_fake01"
CALL_ITEM_ID = "fc_fake01"
CALL_ID = "call_fake01"
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = '{"city": "Paris"}'
CREATED_AT = 1_700_000_000


@dataclass
class ResponsesScript:
    pieces: list[str] = field(default_factory=lambda: ["Hello", " from", " Responses"])
    status: int = 200
    incomplete: bool = False  # the answer stops at max_output_tokens (status "incomplete")
    fail_after: int | None = None  # a stream ends with response.failed after this many text deltas
    input_tokens: int = 9
    output_tokens: int = 4


def wants_tool(body: dict[str, Any]) -> bool:
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else {}
    return bool(body.get("tools")) and last.get("type") != "function_call_output"


def usage_of(script: ResponsesScript) -> dict[str, Any]:
    return {
        "input_tokens": script.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": script.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": script.input_tokens + script.output_tokens,
    }


def message_item(text: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {"id": MESSAGE_ITEM_ID, "type": "message", "status": "completed", "role": "assistant", "content": [part]}


def call_item(arguments: str = TOOL_ARGUMENTS, status: str = "completed") -> dict[str, Any]:
    return {
        "id": CALL_ITEM_ID,
        "type": "function_call",
        "status": status,
        "call_id": CALL_ID,
        "name": TOOL_NAME,
        "arguments": arguments,
    }


def response_body(body: dict[str, Any], script: ResponsesScript, *, tool: bool) -> dict[str, Any]:
    output = [call_item()] if tool else [message_item("".join(script.pieces))]
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": CREATED_AT,
        "status": "incomplete" if script.incomplete else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if script.incomplete else None,
        "error": None,
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage_of(script),
    }


def response_events(body: dict[str, Any], script: ResponsesScript, *, tool: bool) -> list[dict[str, Any]]:
    """The events of a streamed answer, each with its ``type`` (also its SSE event name) and sequence number."""
    final = response_body(body, script, tool=tool)
    started = final | {"status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
    ]
    events += _call_events() if tool else _text_events(script)
    if not tool and script.fail_after is not None:
        error = {"code": "server_error", "message": "The model failed mid-answer."}
        events.append({"type": "response.failed", "response": started | {"status": "failed", "error": error}})
    else:
        ended = "response.incomplete" if script.incomplete else "response.completed"
        events.append({"type": ended, "response": final})
    return [event | {"sequence_number": i} for i, event in enumerate(events)]


def _text_events(script: ResponsesScript) -> list[dict[str, Any]]:
    where = {"item_id": MESSAGE_ITEM_ID, "output_index": 0, "content_index": 0}
    item = message_item("") | {"status": "in_progress", "content": []}
    events: list[dict[str, Any]] = [
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {
            "type": "response.content_part.added",
            **where,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
    ]
    pieces = script.pieces if script.fail_after is None else script.pieces[: script.fail_after]
    events += [{"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []} for piece in pieces]
    if script.fail_after is not None:
        return events
    text = "".join(pieces)
    part = {"type": "output_text", "text": text, "annotations": []}
    return [
        *events,
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": message_item(text)},
    ]


def _call_events() -> list[dict[str, Any]]:
    where = {"item_id": CALL_ITEM_ID, "output_index": 0}
    pieces = [TOOL_ARGUMENTS[:9], TOOL_ARGUMENTS[9:]]
    return [
        {"type": "response.output_item.added", "output_index": 0, "item": call_item("", "in_progress")},
        *({"type": "response.function_call_arguments.delta", **where, "delta": piece} for piece in pieces),
        {"type": "response.function_call_arguments.done", **where, "arguments": TOOL_ARGUMENTS},
        {"type": "response.output_item.done", "output_index": 0, "item": call_item()},
    ]


class FakeResponses(LoopbackServer):
    """Set ``scripts[model]``, ``models``, ``required_key``; read ``requests`` and ``model_list_requests``."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, ResponsesScript] = {}
        self.requests: list[Recorded] = []
        self.model_list_requests: list[Recorded] = []
        self.models: list[str] = []
        self.required_key: str | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/v1/responses", self._responses, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ]

    def requests_for(self, model: str) -> list[Recorded]:
        return [r for r in self.requests if r.body.get("model") == model]

    def _refusal(self, request: Request) -> Response | None:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.required_key is not None and bearer != self.required_key:
            error = {"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": None}
            return JSONResponse({"error": error | {"code": "invalid_api_key"}}, status_code=401)
        return None

    async def _responses(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append(Recorded(path=request.url.path, headers=dict(request.headers), body=body))
        if (refused := self._refusal(request)) is not None:
            return refused
        model = str(body.get("model"))
        script = self.scripts.get(model)
        if script is None:
            message = f"The model `{model}` does not exist or you do not have access to it."
            error: dict[str, Any] = {
                "message": message,
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
            return JSONResponse({"error": error}, status_code=404)
        if script.status >= 400:
            error = {"message": "scripted failure", "type": "server_error", "param": None, "code": None}
            return JSONResponse({"error": error}, status_code=script.status)
        tool = wants_tool(body)
        if body.get("stream"):
            events = response_events(body, script, tool=tool)
            return StreamingResponse(self._stream(events), media_type="text/event-stream")
        return JSONResponse(response_body(body, script, tool=tool))

    @staticmethod
    async def _stream(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        for event in events:
            yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()

    async def _models(self, request: Request) -> Response:
        self.model_list_requests.append(Recorded(path=request.url.path, headers=dict(request.headers), body={}))
        if (refused := self._refusal(request)) is not None:
            return refused
        data = [{"id": m, "object": "model", "created": CREATED_AT, "owned_by": "fake"} for m in self.models]
        return JSONResponse({"object": "list", "data": data})
