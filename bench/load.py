"""The benchmark's load generator: streaming chat completions over raw asyncio sockets, one process.

httpx costs a few hundred microseconds of client CPU per streamed request, enough to become the bottleneck on a
2-core machine, so this speaks HTTP/1.1 itself: one keep-alive connection per concurrent client, a pre-encoded
request, an incremental chunked-encoding and SSE decoder. It reports its own CPU use so a run can show that the
client was not what limited the numbers.

Timings per request (``time.monotonic``, from just before the request is written):
  - ttft: until the first SSE event carrying content (``"content":"tok...``) has arrived;
  - total: until the response has fully arrived (``data: [DONE]`` and the end of the body);
  - way in / way back, when the first chunk carries bench/fake_upstream.py's stamp (same machine, same clock):
    until the upstream had the request, and from the upstream writing the first chunk until it arrived here.

Run: ``python bench/load.py --url http://127.0.0.1:PORT [--token T] --concurrency 16 --requests 1000``
(or ``--long 20000`` for one long stream); prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_CONCURRENCY = 1024
MAX_REQUESTS = 1_000_000
READ_SIZE = 256 * 1024
MAX_HEAD = 64 * 1024
STAMP = re.compile(rb'"id": ?"chatcmpl-bench-(\d+)-(\d+)"')


class ResponseError(Exception):
    """A response that is not a well-formed, successful stream (status, truncation, wrong chunk count)."""


@dataclass
class Result:
    ttft: float
    total: float
    chunks: int
    first_at: float = 0.0  # time.monotonic() of the first content chunk
    done_at: float = 0.0  # time.monotonic() of the end of the response
    way_in: float | None = None  # until the upstream had the request
    way_back: float | None = None  # from the upstream's first chunk until it arrived


def request_bytes(host: str, port: int, token: str, model: str, chunks: int, *, stream: bool = True) -> bytes:
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Say something."}],
            "stream": stream,
            "max_tokens": chunks,
        },
        separators=(",", ":"),
    ).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a streaming request and decodes the SSE answer."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.buf = b""
        self.pos = 0  # how much of buf has been consumed

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=READ_SIZE), self.timeout
        )
        self.buf, self.pos = b"", 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
        self.buf, self.pos = b"", 0

    async def _more(self, deadline: float) -> None:
        """Read what has arrived onto the buffer, dropping what has been consumed (``self.pos``) first."""
        assert self.reader is not None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("response timed out")
        data = await asyncio.wait_for(self.reader.read(READ_SIZE), left)
        if not data:
            raise ResponseError("connection closed mid-response")
        self.buf = self.buf[self.pos :] + data if self.pos < len(self.buf) else data
        self.pos = 0

    async def _head(self, deadline: float) -> tuple[int, dict[str, str]]:
        while (end := self.buf.find(b"\r\n\r\n", self.pos)) < 0:
            if len(self.buf) - self.pos > MAX_HEAD:
                raise ResponseError("response head too large")
            await self._more(deadline)
        lines = self.buf[self.pos : end].decode("latin-1").split("\r\n")
        self.pos = end + 4
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def _body_chunks(self, headers: dict[str, str], deadline: float) -> Any:
        """Yield the decoded body in pieces as they arrive (chunked or Content-Length)."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while (eol := self.buf.find(b"\r\n", self.pos)) < 0:
                    await self._more(deadline)
                size = int(self.buf[self.pos : eol].split(b";", 1)[0], 16)
                if size == 0:  # the last chunk, then no trailers: one more CRLF
                    while (end := self.buf.find(b"\r\n", eol + 2)) < 0:
                        await self._more(deadline)
                        eol = self.buf.find(b"\r\n", self.pos)
                    self.pos = end + 2
                    return
                while len(self.buf) < eol + 2 + size + 2:
                    start = eol - self.pos
                    await self._more(deadline)
                    eol = self.pos + start
                yield self.buf[eol + 2 : eol + 2 + size]
                self.pos = eol + 2 + size + 2
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left > 0:
                if self.pos >= len(self.buf):
                    await self._more(deadline)
                piece = self.buf[self.pos : self.pos + left]
                self.pos += len(piece)
                left -= len(piece)
                yield piece
        else:
            raise ResponseError("response has neither chunked encoding nor a length")

    async def stream(self, request: bytes, expect_chunks: int | None) -> Result:
        if self.writer is None:
            await self.open()
        assert self.writer is not None
        started = time.monotonic()
        deadline = started + self.timeout
        self.writer.write(request)
        status, headers = await self._head(deadline)
        events = SseEvents()
        async for piece in self._body_chunks(headers, deadline):
            events.feed(piece, count=status == 200)
        done_at = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            self.close()
        if status != 200:
            raise ResponseError(f"HTTP {status}: {events.pending[:300]!r}")
        if not events.done or not events.first_at:
            raise ResponseError(f"stream ended without [DONE] or content ({events.chunks} chunks)")
        if expect_chunks is not None and events.chunks != expect_chunks:
            raise ResponseError(f"expected {expect_chunks} content chunks, got {events.chunks}")
        return Result(
            ttft=events.first_at - started,
            total=done_at - started,
            chunks=events.chunks,
            first_at=events.first_at,
            done_at=done_at,
            way_in=None if events.received is None else events.received - started,
            way_back=None if events.sent is None else events.first_at - events.sent,
        )


class SseEvents:
    """Counts the content events of an SSE body fed in pieces; notes when the first one arrived."""

    def __init__(self) -> None:
        self.pending = b""
        self.chunks = 0
        self.first_at = 0.0
        self.done = False
        self.received: float | None = None  # the upstream's stamps on the first chunk, if any
        self.sent: float | None = None

    def feed(self, piece: bytes, *, count: bool) -> None:
        if not count:  # an error body: keep it for the message
            self.pending += piece
            return
        events = (self.pending + piece).split(b"\n\n")
        self.pending = events.pop()
        for event in events:
            if b'"content"' in event and b'"tok' in event:
                self.chunks += 1
                if not self.first_at:
                    self.first_at = time.monotonic()
                    if stamp := STAMP.search(event):
                        self.received, self.sent = int(stamp[1]) / 1e9, int(stamp[2]) / 1e9
            elif event.startswith(b"data: [DONE]"):
                self.done = True
            elif b'"error"' in event:
                raise ResponseError(f"in-band error: {event[:300]!r}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; ``q`` in (0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Cell:
    results: list[Result] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def run_clients(
    host: str, port: int, request: bytes, *, concurrency: int, requests: int, chunks: int, limit: float, budget: float
) -> tuple[Cell, float]:
    """``concurrency`` clients share ``requests`` requests; stop early after ``budget`` seconds."""
    cell = Cell()
    issued = 0
    stop_at = time.monotonic() + budget

    async def client() -> None:
        nonlocal issued
        conn = Connection(host, port, limit)
        try:
            while issued < requests and time.monotonic() < stop_at and len(cell.errors) < max(10, requests // 10):
                issued += 1
                try:
                    cell.results.append(await conn.stream(request, chunks))
                except (OSError, TimeoutError, ResponseError, ValueError, IndexError) as exc:
                    cell.errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
        finally:
            conn.close()

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return cell, time.monotonic() - started


async def load(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    request = request_bytes(host, port, args.token, args.model, args.chunks)
    warm, _ = await run_clients(
        host,
        port,
        request,
        concurrency=args.concurrency,
        requests=args.warmup,
        chunks=args.chunks,
        limit=args.timeout,
        budget=args.budget,
    )
    cpu0, wall0 = time.process_time(), time.monotonic()
    cell, elapsed = await run_clients(
        host,
        port,
        request,
        concurrency=args.concurrency,
        requests=args.requests,
        chunks=args.chunks,
        limit=args.timeout,
        budget=args.budget,
    )
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    ttft = [r.ttft for r in cell.results]
    total = [r.total for r in cell.results]
    way_in = [r.way_in for r in cell.results if r.way_in is not None]
    way_back = [r.way_back for r in cell.results if r.way_back is not None]
    return {
        "concurrency": args.concurrency,
        "requests": len(cell.results),
        "errors": len(cell.errors),
        "error_samples": cell.errors[:3],
        "warmup_errors": len(warm.errors),
        "elapsed_s": elapsed,
        "rps": len(cell.results) / elapsed if elapsed > 0 else math.nan,
        "ttft_p50_ms": percentile(ttft, 50) * 1000,
        "ttft_p99_ms": percentile(ttft, 99) * 1000,
        "total_p50_ms": percentile(total, 50) * 1000,
        "total_p99_ms": percentile(total, 99) * 1000,
        "way_in_p50_ms": percentile(way_in, 50) * 1000,
        "way_back_p50_ms": percentile(way_back, 50) * 1000,
        "client_cpu_pct": 100 * cpu / wall if wall > 0 else math.nan,
        "client_cpu_s": cpu,
        "client_wall_s": wall,
        **(
            {
                "raw_ms": {
                    "ttft": [x * 1000 for x in ttft],
                    "total": [x * 1000 for x in total],
                    "way_in": [x * 1000 for x in way_in],
                    "way_back": [x * 1000 for x in way_back],
                }
            }
            if args.raw
            else {}
        ),
    }


async def long_stream(args: argparse.Namespace) -> dict[str, Any]:
    """``--repeat`` single long streams, one after another; reports each and the median rate."""
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    runs: list[dict[str, Any]] = []
    conn = Connection(host, port, args.timeout)
    try:
        warm = request_bytes(host, port, args.token, args.model, 16)
        with contextlib.suppress(OSError, TimeoutError, ResponseError):
            await conn.stream(warm, 16)
        request = request_bytes(host, port, args.token, args.model, args.long)
        for _ in range(args.repeat):
            cpu0, wall0 = time.process_time(), time.monotonic()
            try:
                result = await conn.stream(request, None)
            except (OSError, TimeoutError, ResponseError, ValueError) as exc:
                runs.append({"error": f"{type(exc).__name__}: {exc}"})
                conn.close()
                continue
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            span = result.done_at - result.first_at
            runs.append(
                {
                    "chunks": result.chunks,
                    "ttft_ms": result.ttft * 1000,
                    "total_s": result.total,
                    "chunks_per_s": result.chunks / span if span > 0 else math.nan,
                    "client_cpu_pct": 100 * cpu / wall if wall > 0 else math.nan,
                    "complete": result.chunks == args.long,
                }
            )
    finally:
        conn.close()
    rates = sorted(r["chunks_per_s"] for r in runs if "chunks_per_s" in r and r["complete"])
    return {
        "long": args.long,
        "runs": runs,
        "chunks_per_s": rates[len(rates) // 2] if rates else math.nan,
        "errors": sum(1 for r in runs if "error" in r or not r.get("complete")),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000 (loopback only)")
    parser.add_argument("--token", default="", help="bearer token, if the target needs one")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=100, help="timed requests in all")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    parser.add_argument("--chunks", type=int, default=16, help="content chunks per response (max_tokens)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds one response may take")
    parser.add_argument("--budget", type=float, default=120, help="seconds a phase may take in all")
    parser.add_argument("--raw", action="store_true", help="also print every request's timings (ms)")
    parser.add_argument("--long", type=int, default=0, help="instead: one stream of this many chunks")
    parser.add_argument("--repeat", type=int, default=3, help="with --long: how many long streams")
    args = parser.parse_args(argv)
    host = urlsplit(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the load generator only targets loopback addresses")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY or not 0 <= args.requests <= MAX_REQUESTS:
        parser.error("concurrency or request count out of range")
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be 1..20")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    out = runner(long_stream(args) if args.long else load(args))
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)  # don't wait on half-closed sockets at exit


if __name__ == "__main__":
    main()
