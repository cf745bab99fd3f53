"""Running a one-at-a-time model call (llama-cpp-python's own ``create_*``) in a thread, never on the event loop,
and stopping it between two tokens. Batched sequences are run by ``batching`` instead.

llama.cpp calls block: each one runs in the default executor. A streamed completion (chat or text) hands its chunks
to the event loop with ``loop.call_soon_threadsafe`` into an ``asyncio.Queue``. When the awaiting task is cancelled
(the client went away, the job timed out, the worker is stopping), the generation's ``Meter.stop`` event is set and
``engine.MeteredLlama.generate`` raises ``GenerationCancelled`` at the next token; the task waits for the thread
to end before it lets the model go (``models.LoadedModel.exclusive``), so no other call uses the context meanwhile.

Token usage comes from the ``Meter`` (see ``engine``): prompt tokens are the tokens of the rendered prompt that
llama.cpp was given, completion tokens the sampled tokens without the end-of-generation one. These are the counts
llama-cpp-python reports for a non-streamed completion, so streamed and non-streamed usage agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from bodhi_local_worker.engine import MeteredLlama

T = TypeVar("T")
Chunk = dict[str, Any]


class GenerationCancelled(Exception):
    """Raised in the generating thread at the first token after ``Meter.stop`` was set."""


class Meter:
    """One generation's stop switch and token counts, shared by the event loop and the generating thread."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.prompt_tokens = 0
        self.completion_tokens = 0

    @property
    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


async def settle(future: asyncio.Future[Any]) -> None:
    """Wait until a thread's ``future`` is done, without raising its exception (``future.result()`` does).

    A thread cannot be interrupted: if the caller is cancelled meanwhile, it still waits, then re-raises.
    """
    interrupted = False
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            interrupted = True
    if not future.cancelled():
        future.exception()  # marked as retrieved (asyncio logs it otherwise); ``result()`` still raises it
    if interrupted:
        raise asyncio.CancelledError


async def in_thread(call: Callable[[], T]) -> T:
    """Run ``call`` in the default executor; a cancellation is re-raised only once the call has returned."""
    future = asyncio.get_running_loop().run_in_executor(None, call)
    await settle(future)
    return future.result()


async def complete_chat(llm: MeteredLlama, params: dict[str, Any]) -> tuple[Chunk, dict[str, int]]:
    """A non-streamed chat completion: the ``chat.completion`` body and its usage."""
    return await _complete(llm, lambda: llm.create_chat_completion(**params, stream=False))


async def complete_text(llm: MeteredLlama, params: dict[str, Any]) -> tuple[Chunk, dict[str, int]]:
    """A non-streamed (legacy) text completion: the ``text_completion`` body and its usage."""
    return await _complete(llm, lambda: llm.create_completion(**params, stream=False))


async def _complete(llm: MeteredLlama, create: Callable[[], Any]) -> tuple[Chunk, dict[str, int]]:
    meter = Meter()

    def run() -> Chunk:
        with metered(llm, meter):
            return cast(Chunk, create())

    future = asyncio.get_running_loop().run_in_executor(None, run)
    try:
        await asyncio.wait({future})
    finally:
        meter.stop.set()  # a no-op once the call has returned; stops it at the next token otherwise
        await settle(future)
    body = future.result()
    usage = body.get("usage")
    return body, usage if isinstance(usage, dict) else meter.usage


async def stream_chat(llm: MeteredLlama, params: dict[str, Any], emit: Callable[[Chunk], None]) -> dict[str, int]:
    """A streamed chat completion: ``emit`` gets each ``chat.completion.chunk`` as it comes; returns the usage."""
    return await _stream(llm, lambda: llm.create_chat_completion(**params, stream=True), emit)


async def stream_text(llm: MeteredLlama, params: dict[str, Any], emit: Callable[[Chunk], None]) -> dict[str, int]:
    """A streamed (legacy) text completion: ``emit`` gets each ``text_completion`` chunk; returns the usage."""
    return await _stream(llm, lambda: llm.create_completion(**params, stream=True), emit)


async def _stream(llm: MeteredLlama, create: Callable[[], Any], emit: Callable[[Chunk], None]) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[Chunk | None] = asyncio.Queue()
    meter = Meter()

    def run() -> None:
        try:
            with metered(llm, meter):
                for chunk in cast(Iterator[Chunk], create()):
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
        finally:
            loop.call_soon_threadsafe(chunks.put_nowait, None)

    future = loop.run_in_executor(None, run)
    try:
        while (chunk := await chunks.get()) is not None:
            emit(chunk)
    finally:
        meter.stop.set()
        await settle(future)
    future.result()  # the thread's exception, if any
    return meter.usage


async def embed(llm: MeteredLlama, inputs: list[str]) -> tuple[list[list[float]], int]:
    """One vector per input (token vectors are mean-pooled for models without pooling) and the prompt tokens."""

    def run() -> tuple[list[list[float]], int]:
        llm.use_embeddings(True)
        response = llm.create_embedding(inputs)
        vectors = [pooled(item["embedding"]) for item in response["data"]]
        return vectors, int(response["usage"]["prompt_tokens"])

    return await in_thread(run)


def pooled(embedding: Any) -> list[float]:
    if embedding and isinstance(embedding[0], list):  # pooling type NONE: one vector per token
        count = len(embedding)
        return [sum(column) / count for column in zip(*embedding, strict=True)]
    return [float(value) for value in embedding]


@contextlib.contextmanager
def metered(llm: MeteredLlama, meter: Meter) -> Iterator[None]:
    """Attach ``meter`` to ``llm`` for one call, in generation mode (embedding output off)."""
    llm.use_embeddings(False)
    llm.meter = meter
    try:
        yield
    finally:
        llm.meter = None
