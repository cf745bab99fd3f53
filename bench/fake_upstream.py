"""A fast fake OpenAI-compatible upstream for the benchmark: raw asyncio HTTP/1.1, keep-alive, no framework.

``POST /v1/chat/completions`` streams ``max_tokens`` chunks (default 16) as server-sent events in the OpenAI
chunk format, each chunk its own write, then ``data: [DONE]``, with chunked transfer encoding; a non-streamed
request gets one ``chat.completion`` body. ``GET /v1/models`` lists ``bench-model``. ``GET /bench/stats`` counts
the connections accepted and requests answered so far, so a run can see whether a client reuses connections.

The first chunk's ``id`` is ``chatcmpl-bench-<received>-<sent>``: ``time.monotonic_ns()`` when the request had
arrived and when that chunk was written. A client on the same machine (same clock) can split its time to first
token into the way in (client to upstream) and the way back (upstream to client).

Run: ``python bench/fake_upstream.py [--port 0]``; it prints ``PORT <n>`` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from typing import Any

DEFAULT_CHUNKS = 16
MAX_CHUNKS = 1_000_000
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
CREATED = 1700000000
DRAIN_EVERY = 64  # chunks between flow-control checks; a slow reader pauses us, memory stays bounded

SSE_HEADERS = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
)
LAST_CHUNK = b"0\r\n\r\n"
STATS = {"connections": 0, "requests": 0}


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def json_response(status: str, body: Any, *, close: bool) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
    )
    return head.encode() + payload


def sse_event(obj: Any) -> bytes:
    return http_chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


class ChunkMaker:
    """Builds each SSE chunk of one stream from pre-encoded halves: only the index changes per chunk."""

    def __init__(self, model: str) -> None:
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED, "model": model}
        head = json.dumps(base, separators=(",", ":"))[:-1]
        self.prefix = (head + ',"choices":[{"index":0,"delta":{"content":"tok').encode()
        self.suffix = b' "},"finish_reason":null}]}'
        self.base = base

    def first(self, received_ns: int) -> bytes:
        stamped = {**self.base, "id": f"chatcmpl-bench-{received_ns}-{time.monotonic_ns()}"}
        chunk = {**stamped, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "tok0 "}}]}
        chunk["choices"][0]["finish_reason"] = None
        return sse_event(chunk)

    def middle(self, index: int) -> bytes:
        data = b"data: %s%d%s\n\n" % (self.prefix, index, self.suffix)
        return b"%x\r\n%s\r\n" % (len(data), data)

    def finish(self) -> bytes:
        return sse_event({**self.base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})

    def usage(self, n: int) -> bytes:
        usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
        return sse_event({**self.base, "choices": [], "usage": usage})


def chunk_count(body: dict[str, Any]) -> int:
    raw = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_CHUNKS
    try:
        return max(1, min(int(raw), MAX_CHUNKS))
    except (TypeError, ValueError):
        return DEFAULT_CHUNKS


async def stream_chat(writer: asyncio.StreamWriter, body: dict[str, Any], received_ns: int) -> None:
    n = chunk_count(body)
    maker = ChunkMaker(str(body.get("model", "bench-model")))
    write = writer.write
    write(SSE_HEADERS + maker.first(received_ns))
    for i in range(1, n):
        write(maker.middle(i))
        if i % DRAIN_EVERY == 0:
            await writer.drain()
    tail = maker.finish()
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        tail += maker.usage(n)
    write(tail + http_chunk(b"data: [DONE]\n\n") + LAST_CHUNK)
    await writer.drain()


def completion(body: dict[str, Any]) -> dict[str, Any]:
    n = chunk_count(body)
    content = "".join(f"tok{i} " for i in range(n))
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": body.get("model", "bench-model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n},
    }


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected: the empty line
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise ValueError("request body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY_BYTES:
        raise ValueError("request body too large")
    return await reader.readexactly(length) if length else b""


def parse_head(raw: bytes) -> tuple[str, str, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, target.split("?", 1)[0], headers


async def answer(
    writer: asyncio.StreamWriter, method: str, path: str, body_raw: bytes, *, close: bool, received_ns: int
) -> None:
    if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
        try:
            body = json.loads(body_raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            writer.write(json_response("400 Bad Request", {"error": {"message": "invalid JSON"}}, close=close))
            return
        if body.get("stream"):
            await stream_chat(writer, body, received_ns)
        else:
            writer.write(json_response("200 OK", completion(body), close=close))
    elif method == "GET" and path == "/bench/stats":
        writer.write(json_response("200 OK", STATS, close=close))
    elif method == "GET" and path in ("/v1/models", "/models"):
        data = [{"id": "bench-model", "object": "model", "owned_by": "bench"}]
        writer.write(json_response("200 OK", {"object": "list", "data": data}, close=close))
    else:
        writer.write(json_response("404 Not Found", {"error": {"message": f"no route {path}"}}, close=close))


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    STATS["connections"] += 1
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            method, path, headers = parse_head(head[:-4])
            body = await read_body(reader, headers)
            received_ns = time.monotonic_ns()
            close = headers.get("connection", "").lower() == "close"
            STATS["requests"] += 1
            await answer(writer, method, path, body, close=close, received_ns=received_ns)
            await writer.drain()
            if close:
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(handle, host, port, limit=MAX_HEADER_BYTES, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the fake upstream listens on loopback only")
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(args.host, args.port))


if __name__ == "__main__":
    main()
