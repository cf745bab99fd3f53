"""One streamed chat completion as a benchmark client sees it: its chunks' times and tokens, in this process
(``llama_cpp.Llama``) or over HTTP (the gateway, llama-cpp-python's server)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

SEED = 1234
PROMPT = (
    "You are a benchmark. Write a long story about a lighthouse keeper who counts the waves every night, "
    "and about the ships that pass, one by one, until the morning comes."
)


@dataclass
class Stream:
    """One streamed chat completion as the client saw it (times from ``time.perf_counter``)."""

    start: float
    first: float | None = None  # the first chunk with content
    last: float | None = None  # the last chunk with content
    end: float = 0.0
    tokens: int = 0  # content characters: one per token with this model (see write_bench_gguf)
    first_tokens: int = 0  # in the first content chunk
    chunks: int = 0  # content chunks
    finish: str | None = None
    usage_tokens: int | None = None  # completion_tokens, where the target reports usage
    prompt_tokens: int | None = None  # prompt_tokens, likewise
    worker: str | None = None  # X-Bodhi-Worker
    text: str = ""  # the answer

    def add(self, chunk: dict[str, Any], now: float) -> None:
        if isinstance(usage := chunk.get("usage"), dict):
            self.usage_tokens = usage.get("completion_tokens")
            self.prompt_tokens = usage.get("prompt_tokens")
        for choice in chunk.get("choices") or []:
            if content := (choice.get("delta") or {}).get("content"):
                if self.first is None:
                    self.first, self.first_tokens = now, len(content)
                self.last = now
                self.tokens += len(content)
                self.text += content
                self.chunks += 1
            self.finish = choice.get("finish_reason") or self.finish

    @property
    def ttft(self) -> float:
        return (self.first or self.end) - self.start

    @property
    def tokens_per_s(self) -> float:
        """Tokens after the first chunk / time after the first chunk."""
        if self.first is None or self.last is None or self.last <= self.first:
            return float("nan")
        return (self.tokens - self.first_tokens) / (self.last - self.first)

    def check(self, max_tokens: int, label: str) -> None:
        if self.tokens != max_tokens or self.finish != "length":
            raise RuntimeError(
                f"{label}: {self.tokens} tokens, finish {self.finish!r}; expected {max_tokens}, 'length'"
            )
        if self.usage_tokens is not None and self.usage_tokens != self.tokens:
            raise RuntimeError(f"{label}: usage says {self.usage_tokens} completion tokens, the text {self.tokens}")


def messages(index: int) -> list[dict[str, str]]:
    """A different prompt per request, so that no target reuses the previous request's KV cache beyond the template."""
    return [{"role": "user", "content": f"Request {index:04d}. {PROMPT}"}]


def chat_body(model: str, index: int, max_tokens: int, *, usage: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": messages(index),
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": SEED,
    }
    if usage:
        body["stream_options"] = {"include_usage": True}
    return body


def stream_in_process(llm: Any, index: int, max_tokens: int) -> Stream:
    stream = Stream(start=time.perf_counter())
    for chunk in llm.create_chat_completion(
        messages=messages(index), stream=True, max_tokens=max_tokens, temperature=0.0, seed=SEED
    ):
        stream.add(chunk, time.perf_counter())
    stream.end = time.perf_counter()
    return stream


def _sse_line(stream: Stream, line: str) -> None:
    if line.startswith("data:") and (data := line[5:].strip()) and data != "[DONE]":
        chunk = json.loads(data)
        if "error" in chunk:
            raise RuntimeError(f"error event: {data[:500]}")
        stream.add(chunk, time.perf_counter())


def stream_http(client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> Stream:
    stream = Stream(start=time.perf_counter())
    with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"POST {url}: {response.status_code} {response.read()[:500]!r}")
        stream.worker = response.headers.get("x-bodhi-worker")
        for line in response.iter_lines():
            _sse_line(stream, line)
    stream.end = time.perf_counter()
    return stream


async def astream_http(client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]) -> Stream:
    stream = Stream(start=time.perf_counter())
    async with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"POST {url}: {response.status_code} {(await response.aread())[:500]!r}")
        stream.worker = response.headers.get("x-bodhi-worker")
        async for line in response.aiter_lines():
            _sse_line(stream, line)
    stream.end = time.perf_counter()
    return stream
