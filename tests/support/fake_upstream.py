"""A small, real OpenAI-compatible HTTP server on loopback, scripted per model by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Script:
    """How the fake answers requests for one model."""

    chunks: int = 3
    delay: float = 0.0  # seconds slept before each chunk after the first
    status: int = 200
    error_body: dict[str, Any] | None = None
    text: str = "tok"
    pieces: list[str] | None = None  # set: the chunks' exact texts (``chunks`` must be their number)
    # seconds slept before answering at all (after the request is recorded); a client that leaves meanwhile ends
    # the request there (``client_gone_at``)
    latency: float = 0.0
    # statuses answered to the first requests, one each (popped), before the scripted answer: [429, 429]
    leading_failures: list[int] = field(default_factory=list)
    disconnect_after: int | None = None  # drop the connection after this many chunks, without [DONE]
    error_headers: dict[str, str] = field(default_factory=dict)  # sent with an error status (Retry-After, ...)
    echo_key: bool = False  # an error's message repeats the bearer it received, as some providers do
    hang: bool = False  # never answer; the request ends when the client gives up (``client_gone_at``)
    redirect_to: str | None = None  # answer 307 with this Location
    error_after: int | None = None  # a stream sends an in-band error event after this many chunks (``echo_key``)
    usage: dict[str, Any] | None = None  # set: the usage reported, instead of the counts of the answer
    # set: a stream's body is exactly these pieces (malformed events, no [DONE], ...), sent ``delay`` apart
    raw_stream: list[bytes] | None = None
    content_type: str = "text/event-stream"  # of a stream's answer


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    chunk_times: list[float] = field(default_factory=list)  # time.monotonic() when each chunk was sent
    sent: list[bytes] = field(default_factory=list)  # the data: payload of each SSE event, as sent
    finished_at: float | None = None
    # time.monotonic() when the client closed the stream early, or closed the connection while a request (streamed
    # or not) waited out its ``latency`` or ``hang``
    client_gone_at: float | None = None


HANG_LIMIT_S = 60.0


def default_error(status: int, model: str) -> dict[str, Any]:
    """The body of a scripted error status: OpenAI's own for an unknown model (404), a generic one otherwise."""
    if status == 404:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return {
            "error": {"message": message, "type": "invalid_request_error", "param": None, "code": "model_not_found"}
        }
    return {"error": {"message": "scripted failure", "type": "api_error", "param": None, "code": None}}


def in_band_error(echoed: str) -> bytes:
    """An error event in the middle of a stream, as some providers send one (repeating the bearer if given)."""
    message = f"overloaded mid-stream ({echoed})" if echoed else "overloaded mid-stream"
    error = {"message": message, "type": "server_error", "param": None, "code": "overloaded"}
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def chunk_text(script: Script, index: int) -> str:
    if script.pieces is not None:  # exact text, e.g. Markdown for a screenshot
        return script.pieces[index]
    return f"{script.text}{index} "


USAGE_PROMPT_TOKENS = 5
TOOL = {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def usage_of(script: Script) -> dict[str, Any]:
    if script.usage is not None:
        return script.usage
    return {
        "prompt_tokens": USAGE_PROMPT_TOKENS,
        "completion_tokens": script.chunks,
        "total_tokens": USAGE_PROMPT_TOKENS + script.chunks,
    }


def tool_call_chunks(model: str) -> list[dict[str, Any]]:
    """A tool call streamed as OpenAI does: the name first, then the arguments in pieces."""
    first = {"index": 0, "id": "call_fake", "type": "function", "function": {"name": TOOL["name"], "arguments": ""}}
    pieces = [TOOL["arguments"][:8], TOOL["arguments"][8:]]
    deltas = [{"tool_calls": [first]}] + [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces]
    return [
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": d, "finish_reason": "tool_calls" if i == len(deltas) - 1 else None}],
        }
        for i, d in enumerate(deltas)
    ]


def completion_chunk(model: str, index: int, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }


def text_completion(model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    """A legacy completion body (or streamed chunk: the same object) with these ``choices``."""
    return {"id": "cmpl-fake", "object": "text_completion", "created": 1700000000, "model": model, "choices": choices}


class FakeUpstream:
    """Start with ``start()``; set ``scripts[model]``; read ``requests`` to see what arrived."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.requests: list[RecordedRequest] = []
        self.model_list_requests: list[RecordedRequest] = []  # GET /v1/models, kept apart from chat requests
        self.models_required_key: str | None = None  # set: /v1/models answers 401 to any other bearer
        self.models_ids: list[str] | None = None  # set: /v1/models lists these, in this order, not the scripts
        self.models_raw_body: bytes | None = None  # set: /v1/models answers 200 with these bytes (not JSON)
        self.port = _free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.body.get("model") == model]

    async def has_seen(self, model: str, count: int = 1, *, within: float = 10) -> None:
        """Wait until ``count`` requests for ``model`` have arrived (a worker is running them)."""
        deadline = time.monotonic() + within
        while len(self.requests_for(model)) < count:
            assert time.monotonic() < deadline, f"the upstream never saw {count} request(s) for {model}"
            await asyncio.sleep(0.02)

    def reset_model_list(self) -> None:
        """Put ``/v1/models`` back to listing the scripts to anyone."""
        self.models_required_key = None
        self.models_ids = None
        self.models_raw_body = None

    async def _models(self, request: Request) -> Response:
        self.model_list_requests.append(RecordedRequest(path=request.url.path, headers=dict(request.headers), body={}))
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.models_required_key is not None and bearer != self.models_required_key:
            # echo the key as some providers do, so tests can check it never reaches a message
            message = f"Incorrect API key provided: {bearer}"
            error = {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
            return JSONResponse({"error": error}, status_code=401)
        if self.models_raw_body is not None:
            return Response(self.models_raw_body, media_type="text/html")
        ids = self.models_ids if self.models_ids is not None else sorted(self.scripts)
        data = [{"id": m, "object": "model", "owned_by": "fake"} for m in ids]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        record = RecordedRequest(path=request.url.path, headers=dict(request.headers), body=body)
        self.requests.append(record)
        model = str(body.get("model"))
        script = self.scripts.get(model, Script())
        left = bool(script.latency) and await self._client_leaves_within(request, script.latency)
        if script.hang or left:  # one that left meanwhile is recorded as gone at once
            return await self._hang(request, record)
        if script.redirect_to is not None:
            return Response(status_code=307, headers={"Location": script.redirect_to})
        status = script.leading_failures.pop(0) if script.leading_failures else script.status
        if status >= 400:
            error = script.error_body or default_error(status, model)
            if script.echo_key:
                bearer = request.headers.get("authorization", "")
                error = {"error": {**error["error"], "message": f"{error['error']['message']} ({bearer})"}}
            return JSONResponse(error, status_code=status, headers=script.error_headers)
        if body.get("stream"):
            bearer = request.headers.get("authorization", "")
            stream = self._stream(record, model, script, bearer=bearer)
            if script.raw_stream is not None:
                stream = self._raw_stream(record, script.raw_stream, script.delay)
            return StreamingResponse(stream, media_type=script.content_type)
        content = "".join(chunk_text(script, i) for i in range(script.chunks))
        record.finished_at = time.monotonic()
        if body.get("tools"):
            call = {"id": "call_fake", "type": "function", "function": dict(TOOL)}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1700000000,
                    "model": model,
                    "usage": usage_of(script),
                    "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                }
            )
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": usage_of(script),
            }
        )

    async def _completions(self, request: Request) -> Response:
        """Legacy text completions (``prompt`` in, ``text_completion`` out), as ``_chat`` for what a script sets of
        status, error body and headers, usage, ``raw_stream`` and ``delay``."""
        body = json.loads(await request.body())
        record = RecordedRequest(path=request.url.path, headers=dict(request.headers), body=body)
        self.requests.append(record)
        model = str(body.get("model"))
        script = self.scripts.get(model, Script())
        status = script.leading_failures.pop(0) if script.leading_failures else script.status
        if status >= 400:
            error = script.error_body or default_error(status, model)
            return JSONResponse(error, status_code=status, headers=script.error_headers)
        if body.get("stream"):
            if script.raw_stream is not None:
                raw = self._raw_stream(record, script.raw_stream, script.delay)
                return StreamingResponse(raw, media_type=script.content_type)
            return StreamingResponse(self._text_stream(record, model, script), media_type=script.content_type)
        text = "".join(chunk_text(script, i) for i in range(script.chunks))
        record.finished_at = time.monotonic()
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
        return JSONResponse({**text_completion(model, [choice]), "usage": usage_of(script)})

    @staticmethod
    async def _text_stream(record: RecordedRequest, model: str, script: Script) -> AsyncIterator[bytes]:
        chunks = [
            text_completion(
                model, [{"index": 0, "text": chunk_text(script, i), "logprobs": None, "finish_reason": None}]
            )
            for i in range(script.chunks)
        ]
        chunks[-1]["choices"][0]["finish_reason"] = "stop"
        if (record.body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**text_completion(model, []), "usage": usage_of(script)})
        for i, chunk in enumerate(chunks):
            if i and script.delay:
                await asyncio.sleep(script.delay)
            payload = json.dumps(chunk).encode()
            record.chunk_times.append(time.monotonic())
            record.sent.append(payload)
            yield b"data: " + payload + b"\n\n"
        yield b"data: [DONE]\n\n"
        record.finished_at = time.monotonic()

    @staticmethod
    async def _hang(request: Request, record: RecordedRequest) -> Response:
        # The body is read, so the next ASGI message is the client's disconnect; bounded, so a stuck test cannot
        # hold the server forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HANG_LIMIT_S):
                while (await request.receive())["type"] != "http.disconnect":
                    pass
        record.client_gone_at = time.monotonic()
        return Response(status_code=504)

    @staticmethod
    async def _client_leaves_within(request: Request, seconds: float) -> bool:
        """Wait ``seconds``; True as soon as the client disconnects meanwhile (its body is read, so the next ASGI
        message is the disconnect)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                return True
        return False

    async def _embeddings(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append(RecordedRequest(path=request.url.path, headers=dict(request.headers), body=body))
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": [0.5, -0.25, float(i)]} for i in range(len(inputs))]
        usage = {"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)}
        return JSONResponse({"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    @staticmethod
    async def _raw_stream(record: RecordedRequest, pieces: list[bytes], delay: float) -> AsyncIterator[bytes]:
        for i, piece in enumerate(pieces):
            if i and delay:
                await asyncio.sleep(delay)
            record.sent.append(piece)
            yield piece
        record.finished_at = time.monotonic()

    async def _stream(
        self, record: RecordedRequest, model: str, script: Script, *, bearer: str = ""
    ) -> AsyncIterator[bytes]:
        if record.body.get("tools"):
            chunks = tool_call_chunks(model)
        else:
            chunks = [completion_chunk(model, i, chunk_text(script, i)) for i in range(script.chunks)]
            chunks[-1]["choices"][0]["finish_reason"] = "stop"
        if (record.body.get("stream_options") or {}).get("include_usage"):
            chunks.append(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": model,
                    "choices": [],
                    "usage": usage_of(script),
                }
            )
        try:
            for i, chunk in enumerate(chunks):
                if i and script.delay:
                    await asyncio.sleep(script.delay)
                if script.disconnect_after is not None and i == script.disconnect_after:
                    raise ConnectionAbortedError("scripted disconnect")  # uvicorn drops the connection
                if script.error_after is not None and i == script.error_after:
                    yield in_band_error(bearer if script.echo_key else "")
                    break
                payload = json.dumps(chunk).encode()
                record.chunk_times.append(time.monotonic())
                record.sent.append(payload)
                yield b"data: " + payload + b"\n\n"
            yield b"data: [DONE]\n\n"
            record.finished_at = time.monotonic()
        finally:
            if record.finished_at is None and script.disconnect_after is None:
                record.client_gone_at = time.monotonic()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


free_port = _free_port
