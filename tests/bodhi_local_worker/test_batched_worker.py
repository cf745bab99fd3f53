"""One local worker serving several streams of an alias at once (continuous batching), driven through Redis as the
API drives it: they run together, none gets another's tokens, each can be cancelled alone, a prompt too long for a
slot is a 400, and the worker claims and advertises as many jobs as the alias's model has slots."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from bodhi_shared.contract import EventKind, LocalModel, StreamEvent
from tests.bodhi_local_worker.conftest import LONG_CONTEXT, Workers
from tests.bodhi_local_worker.local_api import Events, LocalApi, chunk_payloads
from tests.support.tiny_gguf import EOS_ID

NO_END = {str(EOS_ID): -100}  # the end-of-text token forbidden: each answer runs to its max_tokens
QUESTIONS = ["Say hello.", "Count to ten, please.", "What is 2 + 2?", "name a colour"]


@dataclass
class Stream:
    """What one streamed request received, and when."""

    events: list[StreamEvent] = field(default_factory=list)
    first_content: float | None = None
    ended: float = 0.0

    @property
    def text(self) -> str:
        return "".join(
            choice["delta"].get("content", "") for chunk in chunk_payloads(self.events) for choice in chunk["choices"]
        )

    @property
    def usage(self) -> dict[str, Any]:
        assert self.events[-1].kind == EventKind.DONE, self.events[-1]
        assert self.events[-1].usage is not None
        return self.events[-1].usage


async def read_stream(events: Events, within: float = 60) -> Stream:
    stream = Stream()
    deadline = time.monotonic() + within
    while not stream.events or stream.events[-1].kind not in (EventKind.DONE, EventKind.ERROR):
        event = await events.next(deadline - time.monotonic())
        assert event is not None, f"no end within {within} s: {stream.events[-3:]}"
        stream.events.append(event)
        if stream.first_content is None and event.kind == EventKind.CHUNK and b'"content"' in event.data:
            stream.first_content = time.monotonic()
    stream.ended = time.monotonic()
    return stream


def body(question: str, max_tokens: int) -> dict[str, Any]:
    messages = [{"role": "user", "content": question}]
    return {"messages": messages, "max_tokens": max_tokens, "stream": True, "temperature": 0, "logit_bias": NO_END}


async def streams_together(local_api: LocalApi, local: LocalModel, bodies: list[dict[str, Any]]) -> list[Stream]:
    async with AsyncExitStack() as stack:
        subscriptions = [await stack.enter_async_context(local_api.job(local, each)) for each in bodies]
        return list(await asyncio.gather(*(read_stream(events) for events in subscriptions)))


def first_difference(a: str, b: str) -> int | None:
    return next((index for index, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)


async def test_four_streams_run_at_once_and_each_matches_its_answer_alone(
    local_api: LocalApi, workers: Workers
) -> None:
    bodies = [body(question, 800) for question in QUESTIONS]
    alone = [(await streams_together(local_api, workers.alias_a, [each]))[0] for each in bodies]

    together = await streams_together(local_api, workers.alias_a, bodies)

    # Batched: every stream had its first token before any of them finished. One at a time, the second stream
    # would have had nothing until the first ended.
    firsts = [stream.first_content for stream in together]
    assert all(first is not None for first in firsts)
    assert max(first for first in firsts if first is not None) < min(stream.ended for stream in together)
    assert {stream.events[0].meta["worker"] for stream in together if stream.events[0].meta} == {workers.a_id}
    for question, one, each in zip(QUESTIONS, alone, together, strict=True):
        assert each.usage["completion_tokens"] == one.usage["completion_tokens"] == 800
        assert each.usage["prompt_tokens"] == one.usage["prompt_tokens"]
        differs = first_difference(one.text, each.text)
        assert differs is None, f"{question!r}: batched differs from alone at character {differs}"
        assert each.text == one.text
    # Four questions, four different answers: one stream that got another's tokens would differ from its own alone.
    assert len({stream.text for stream in together}) == len(QUESTIONS)


async def test_cancelling_one_stream_stops_it_and_not_the_others(local_api: LocalApi, workers: Workers) -> None:
    request_ids = [uuid.uuid4().hex for _ in range(3)]
    async with AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(local_api.job(workers.alias_a, body(q, 2000), request_id=request_id))
            for q, request_id in zip(QUESTIONS, request_ids, strict=False)
        ]
        readers = [asyncio.create_task(read_stream(events)) for events in (subscriptions[0], subscriptions[2])]
        cancelled = subscriptions[1]
        started = await cancelled.next(10)
        assert started is not None
        assert started.kind == EventKind.STARTED
        first = await cancelled.next(2)
        assert first is not None
        assert first.kind == EventKind.CHUNK
        await local_api.cancel(request_ids[1])
        cancelled_at = time.monotonic()
        late = []
        while (event := await cancelled.next(1.5)) is not None:
            late.append((time.monotonic() - cancelled_at, event))
        others = await asyncio.gather(*readers)

    assert all(event.kind == EventKind.CHUNK for _, event in late)  # no DONE: it was stopped
    assert all(delay < 1.0 for delay, _ in late)
    assert [stream.usage["completion_tokens"] for stream in others] == [2000, 2000]
    assert all(stream.ended - cancelled_at > 0 for stream in others)  # they went on after the cancel


async def test_a_prompt_too_long_for_a_slot_is_a_400_naming_the_numbers(local_api: LocalApi, workers: Workers) -> None:
    split = await local_api.put_alias(
        f"tiny-split-{uuid.uuid4().hex[:6]}", workers.alias_a.path, {"n_ctx": 1024, "n_parallel": 4}
    )
    whole = await local_api.put_alias(
        f"tiny-whole-{uuid.uuid4().hex[:6]}", workers.alias_a.path, {"n_ctx": 1024, "n_parallel": 1}
    )
    await local_api.wait_for_alias_workers(split.alias, {workers.a_id})
    await local_api.wait_for_alias_workers(whole.alias, {workers.a_id})
    # One token per byte: about 330 tokens with the chat template, more than a quarter of 1024.
    question = {"messages": [{"role": "user", "content": "x" * 300}], "max_tokens": 2}

    refused = await local_api.run(split, question)
    answered = await local_api.run(whole, question)

    assert refused[-1].kind == EventKind.ERROR
    assert refused[-1].status == 400
    error = json.loads(refused[-1].data)["error"]
    prompt_tokens = (answered[-1].usage or {})["prompt_tokens"]
    assert error["message"].startswith(f"This request's prompt has {prompt_tokens} tokens,")
    assert "holds 256 tokens per request (n_ctx 1024 split between 4 parallel slots)" in error["message"]
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
    )
    assert answered[-1].kind == EventKind.RESPONSE  # the same prompt fits a model that serves one at a time
    for alias in (split.alias, whole.alias):
        await local_api.remove_alias(alias)


async def test_a_worker_claims_and_advertises_as_many_jobs_as_the_model_has_slots(
    local_api: LocalApi, workers: Workers
) -> None:
    local = await local_api.put_alias(
        f"tiny-two-{uuid.uuid4().hex[:6]}", workers.alias_a.path, LONG_CONTEXT | {"n_parallel": 2}
    )
    await local_api.wait_for_alias_workers(local.alias, {workers.a_id})
    idle = await local_api.alias_slots(local.alias)
    assert idle == {"in_use": 0, "free": 2}

    async with AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(local_api.job(local, body(question, 2500))) for question in QUESTIONS[:3]
        ]
        started = [await events.next(10) for events in subscriptions[:2]]
        assert all(event is not None and event.kind == EventKind.STARTED for event in started)
        # Two slots: the third job stays on the queue while the first two run.
        assert await subscriptions[2].next(0.5) is None
        busy = await local_api.alias_slots(local.alias)
        assert await local_api.redis.zcard(local_api.keys.local_queue(local.alias)) == 1
        first_two = await asyncio.gather(*(read_stream(events) for events in subscriptions[:2]))
        third = await read_stream(subscriptions[2])

    assert busy == {"in_use": 2, "free": 0}
    assert third.events[0].kind == EventKind.STARTED
    assert min(stream.ended for stream in first_two) <= (third.first_content or 0)
    assert third.usage["completion_tokens"] == 2500
    await local_api.remove_alias(local.alias)


async def test_a_request_the_batch_cannot_serve_takes_the_one_at_a_time_path(
    local_api: LocalApi, workers: Workers
) -> None:
    grammar = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    grammar["response_format"] = {"type": "json_object"}  # a grammar sampler: llama-cpp-python's own call

    async with AsyncExitStack() as stack:
        batched = await stack.enter_async_context(local_api.job(workers.alias_a, body(QUESTIONS[0], 300)))
        constrained = await local_api.run(workers.alias_a, grammar, within=30)
        streamed = await read_stream(batched)

    assert constrained[-1].kind == EventKind.RESPONSE
    answer = json.loads(constrained[-1].data)
    assert answer["object"] == "chat.completion"
    assert answer["usage"]["completion_tokens"] >= 1
    assert streamed.usage["completion_tokens"] == 300
    # Batching resumes afterwards.
    again = await streams_together(local_api, workers.alias_a, [body(q, 50) for q in QUESTIONS[:2]])
    assert [stream.usage["completion_tokens"] for stream in again] == [50, 50]


async def test_text_completions_are_batched_too(local_api: LocalApi, workers: Workers) -> None:
    prompt = {"prompt": "Once upon a time", "max_tokens": 30, "temperature": 0, "logit_bias": NO_END}
    plain = await local_api.run(workers.alias_a, prompt, endpoint="completions")
    streamed = await local_api.run(workers.alias_a, prompt | {"stream": True}, endpoint="completions")

    completion = json.loads(plain[-1].data)
    assert completion["object"] == "text_completion"
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == 30
    chunks = chunk_payloads(streamed)
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == completion["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")  # cached_tokens: the first filled the slot
    assert streamed[-1].usage is not None
    assert {key: streamed[-1].usage[key] for key in counts} == {key: completion["usage"][key] for key in counts}


async def test_the_next_turn_reports_the_prompt_tokens_its_slot_had_cached(
    local_api: LocalApi, workers: Workers
) -> None:
    turn = {"max_tokens": 20, "temperature": 0, "logit_bias": NO_END}
    history: list[dict[str, str]] = [{"role": "user", "content": "Tell me about a cat who lived in a library."}]
    first = json.loads((await local_api.run(workers.alias_a, turn | {"messages": history}))[-1].data)
    history += [first["choices"][0]["message"], {"role": "user", "content": "And then?"}]

    second = json.loads((await local_api.run(workers.alias_a, turn | {"messages": history}))[-1].data)
    streamed = await local_api.run(workers.alias_a, turn | {"messages": history, "stream": True})

    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    # The first turn's prompt, at least, was in the slot's cache: only the rest of the history was read.
    assert first["usage"]["prompt_tokens"] <= cached < second["usage"]["prompt_tokens"]
    # The same prompt again: all of it but its last token, which is read again for the next token's logits.
    assert streamed[-1].usage is not None
    assert streamed[-1].usage["prompt_tokens_details"]["cached_tokens"] == second["usage"]["prompt_tokens"] - 1
