"""The event loop's side of the batching engine: one request's sequence, as OpenAI chunks or one body.

``run_sequence`` submits a ``batching.Sequence`` and awaits its events, which the engine's thread hands over with
``loop.call_soon_threadsafe``; when the awaiting task is cancelled (the client went away, the job timed out, the
worker is stopping), the sequence is cancelled and the engine drops it at its next step, the others going on.
Chunks and bodies have the shapes llama-cpp-python gives (``chat.completion.chunk`` with the role first, then the
content, then the finish reason; ``text_completion``), so a client cannot tell which path answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from bodhi_local_worker.batching import (
    BatchingEngine,
    Delta,
    Embedded,
    EmbeddingJob,
    Event,
    Failed,
    Finished,
    Sequence,
    SequenceRequest,
)

Chunk = dict[str, Any]


def _handing_to(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> Callable[[Any], None]:
    def deliver(event: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is gone, nobody waits for it
            loop.call_soon_threadsafe(queue.put_nowait, event)

    return deliver


async def run_sequence(engine: BatchingEngine, request: SequenceRequest, on_text: Callable[[str], None]) -> Finished:
    """Generate one sequence in the batch: ``on_text`` gets its text as it comes; returns how it ended."""
    events: asyncio.Queue[Event] = asyncio.Queue()
    sequence = Sequence(request, _handing_to(asyncio.get_running_loop(), events))
    engine.submit(sequence)
    try:
        while True:
            event = await events.get()
            if isinstance(event, Delta):
                on_text(event.text)
            elif isinstance(event, Finished):
                return event
            else:
                raise event.error
    finally:
        engine.cancel(sequence)  # a no-op once it ended


def usage_of(finished: Finished) -> dict[str, Any]:
    """OpenAI's usage, with the prompt tokens the slot's cache held (read again for nothing) as ``cached_tokens``."""
    prompt, completion = finished.prompt_tokens, finished.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": finished.cached_tokens},
    }


async def stream_chat(
    engine: BatchingEngine, request: SequenceRequest, emit: Callable[[Chunk], None], *, model: str
) -> dict[str, Any]:
    """A streamed chat completion: ``emit`` gets each ``chat.completion.chunk``; returns the usage."""
    head = {"id": f"chatcmpl-{uuid.uuid4()}", "model": model, "created": int(time.time())}
    head["object"] = "chat.completion.chunk"
    opened = False

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> Chunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**head, "choices": [choice]}

    def on_text(text: str) -> None:
        nonlocal opened
        if not opened:
            emit(chunk({"role": "assistant"}))
            opened = True
        emit(chunk({"content": text}))

    finished = await run_sequence(engine, request, on_text)
    if not opened:
        emit(chunk({"role": "assistant"}))
    emit(chunk({}, finished.finish_reason))
    return usage_of(finished)


async def stream_text(
    engine: BatchingEngine, request: SequenceRequest, emit: Callable[[Chunk], None], *, model: str
) -> dict[str, Any]:
    """A streamed legacy text completion: ``emit`` gets each ``text_completion`` chunk; returns the usage."""
    head = {"id": f"cmpl-{uuid.uuid4()}", "object": "text_completion", "created": int(time.time()), "model": model}

    def chunk(text: str, finish_reason: str | None = None) -> Chunk:
        return {**head, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}]}

    finished = await run_sequence(engine, request, lambda text: emit(chunk(text)))
    emit(chunk("", finished.finish_reason))
    return usage_of(finished)


async def complete_chat(engine: BatchingEngine, request: SequenceRequest, *, model: str) -> Chunk:
    """A non-streamed chat completion's ``chat.completion`` body (usage included)."""
    parts: list[str] = []
    finished = await run_sequence(engine, request, parts.append)
    message = {"role": "assistant", "content": "".join(parts)}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finished.finish_reason}
    return {
        "id": f"chatcmpl-{uuid.uuid4()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage_of(finished),
    }


async def complete_text(engine: BatchingEngine, request: SequenceRequest, *, model: str) -> Chunk:
    """A non-streamed legacy text completion's ``text_completion`` body (usage included)."""
    parts: list[str] = []
    finished = await run_sequence(engine, request, parts.append)
    choice = {"text": "".join(parts), "index": 0, "logprobs": None, "finish_reason": finished.finish_reason}
    return {
        "id": f"cmpl-{uuid.uuid4()}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage_of(finished),
    }


async def embed(engine: BatchingEngine, inputs: list[list[int]]) -> Embedded:
    """One vector per input (token ids), decoded in the engine's batches with other requests' inputs."""
    answers: asyncio.Queue[Embedded | Failed] = asyncio.Queue()
    job = EmbeddingJob(inputs, _handing_to(asyncio.get_running_loop(), answers))
    engine.submit_embeddings(job)
    try:
        answer = await answers.get()
    finally:
        engine.cancel(job)
    if isinstance(answer, Failed):
        raise answer.error
    return answer
