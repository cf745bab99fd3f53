"""A remote worker inside the test's own process: it takes the app's jobs off the remote queue and answers each one
with a scripted chat answer, through ``translated_jobs.answer_in_format`` as the real workers do, so the API's side
of the inbound formats (relay, stream ends and errors, stored responses) runs with measured coverage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from arq.constants import job_key_prefix
from arq.jobs import deserialize_job

from bodhi_shared.contract import EventKind, InferenceJob, StreamEvent, unpack
from bodhi_shared.errors import BodhiError
from bodhi_shared.event_publisher import EventPublisher
from bodhi_shared.redis_keys import REMOTE_WORKER_KIND
from bodhi_shared.translated_jobs import answer_in_format
from tests.inprocess.harness import InProcessApp

ChatAnswer = Callable[[InferenceJob, EventPublisher], Awaitable[StreamEvent]]
WORKER_ID = "remote-inprocess-fake"
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def chat_chunk(delta: dict[str, Any] | None, *, finish_reason: str | None = None) -> bytes:
    """One chat chunk frame as a worker publishes it; ``delta=None``: the usage-only last chunk."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    chunk: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": choices,
    }
    if delta is None:
        chunk["usage"] = USAGE
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def text_answer(*pieces: str, pause: float = 0.0, then: Callable[[], Awaitable[None]] | None = None) -> ChatAnswer:
    """A chat answer of ``pieces`` (a stream's chunks, or one completion), ``pause`` seconds apart; ``then`` runs
    after the last piece (a worker dying: it never returns)."""

    async def answer(job: InferenceJob, events: EventPublisher) -> StreamEvent:
        text = "".join(pieces)
        if not job.stream:
            message = {"role": "assistant", "content": text}
            body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "usage": USAGE}
            body["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
            return StreamEvent(EventKind.RESPONSE, data=json.dumps(body).encode(), meta={"usage": USAGE})
        for index, piece in enumerate(pieces):
            if index and pause:
                await asyncio.sleep(pause)
            events.chunk(chat_chunk({"content": piece}))
        if then is not None:
            await then()
        events.chunk(chat_chunk({}, finish_reason="stop"))
        events.chunk(chat_chunk(None))
        return StreamEvent(EventKind.DONE, meta={"usage": USAGE})

    return answer


class FakeWorker:
    """``jobs``: every job it took, as enqueued."""

    def __init__(self, bodhi: InProcessApp, answer: ChatAnswer) -> None:
        self.bodhi, self.answer = bodhi, answer
        self.jobs: list[InferenceJob] = []

    @property
    def _heartbeats(self) -> str:
        return self.bodhi.resources.keys.workers(REMOTE_WORKER_KIND)

    async def beat(self) -> None:
        await self.bodhi.resources.redis.zadd(self._heartbeats, {WORKER_ID: time.time() + 3600})

    async def die(self) -> None:
        """Stop heartbeating and never answer again (the API notices within a second or two)."""
        await self.bodhi.resources.redis.zrem(self._heartbeats, WORKER_ID)
        await asyncio.sleep(3600)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeWorker]:
        await self.beat()
        task = asyncio.create_task(self._serve())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _serve(self) -> None:
        redis, queue = self.bodhi.resources.redis, self.bodhi.resources.keys.remote_queue
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                taken = await redis.zpopmin(queue)
                if not taken:
                    await asyncio.sleep(0.01)
                    continue
                job_id = taken[0][0].decode()
                raw = await redis.get(job_key_prefix + job_id)
                job = InferenceJob.from_wire(deserialize_job(raw, deserializer=unpack).args[0])
                self.jobs.append(job)
                task = asyncio.create_task(self._run(job))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()

    async def _run(self, job: InferenceJob) -> None:
        events = EventPublisher(self.bodhi.resources.redis, job.channel, request_id=job.request_id)
        events.emit(StreamEvent(EventKind.STARTED, meta={"worker": WORKER_ID, "kind": REMOTE_WORKER_KIND}))
        try:
            outcome = await answer_in_format(job, events, self.answer)
        except BodhiError as exc:
            outcome = StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json())
        await events.publish(outcome)
