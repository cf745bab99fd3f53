"""A job of an inbound format answered with a worker's chat answer: what it publishes, in the inbound format, and
how it ends (usage in chat form, errors in the route's shape before the first frame and in-band after it)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bodhi_shared.contract import IN_BAND, Endpoint, EventKind, InferenceJob, StreamEvent
from bodhi_shared.errors import InvalidRequest, UpstreamHTTPError, UpstreamTimeout
from bodhi_shared.event_publisher import EventPublisher
from bodhi_shared.translated_jobs import answer_in_format, openai_error_of
from tests.bodhi_shared.api_formats.frames import USAGE, chunk, completion, parse_frames


class RecordingRedis:
    """Enough of a Redis client for an ``EventPublisher``: what it publishes, decoded."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []

    async def publish(self, channel: str, message: bytes) -> None:
        self.events.append(StreamEvent.decode(message))

    @asynccontextmanager
    async def pipeline(self, transaction: bool = False) -> AsyncIterator[RecordingRedis]:
        yield self

    async def execute(self) -> None:
        pass


def publisher() -> tuple[EventPublisher, RecordingRedis]:
    redis = RecordingRedis()
    return EventPublisher(redis, "channel", request_id="r1"), redis  # type: ignore[arg-type]


def job(endpoint: str, body: dict[str, Any], *, stream: bool) -> InferenceJob:
    return InferenceJob(
        request_id="r1",
        channel="channel",
        endpoint=endpoint,
        body=json.dumps({**body, "stream": stream}).encode(),
        stream=stream,
        pickup_deadline=0,
    )


MESSAGES_BODY = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
RESPONSES_BODY = {"model": "m", "input": "hi"}


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class ChatAnswer:
    """A worker's chat answer: publishes ``chunks`` (dicts, or raw frames), then ends with ``end`` (an event, or an
    exception to raise); records the chat job it was given."""

    def __init__(self, chunks: list[dict[str, Any]] | None = None, *, end: StreamEvent | Exception | None = None):
        self.chunks = chunks or []
        self.end = end if end is not None else StreamEvent(EventKind.DONE, meta={"usage": USAGE})
        self.jobs: list[InferenceJob] = []

    async def __call__(self, chat_job: InferenceJob, events: EventPublisher) -> StreamEvent:
        self.jobs.append(chat_job)
        for piece in self.chunks:
            events.chunk(sse(piece))
        if isinstance(self.end, Exception):
            raise self.end
        return self.end

    @property
    def chat(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.jobs[-1].body)
        return body


async def published(events: EventPublisher, redis: RecordingRedis, outcome: StreamEvent) -> bytes:
    """The frames the job published, joined (its closing event not included)."""
    await events.flush()
    assert outcome.kind in (EventKind.DONE, EventKind.ERROR, EventKind.RESPONSE)
    return b"".join(e.data for e in redis.events if e.kind == EventKind.CHUNK)


TEXT = [chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}, finish_reason="stop")]


async def test_a_responses_stream_is_translated_and_keeps_the_chat_usage() -> None:
    events, redis = publisher()
    chat = ChatAnswer([*TEXT, chunk(None, usage=USAGE)])

    outcome = await answer_in_format(job(Endpoint.RESPONSES, RESPONSES_BODY, stream=True), events, chat)

    frames = parse_frames(await published(events, redis, outcome))
    assert chat.jobs[0].endpoint == Endpoint.CHAT_COMPLETIONS
    assert chat.chat["stream_options"] == {"include_usage": True}  # asked for by the translation
    assert [name for name, _ in frames][:2] == ["response.created", "response.in_progress"]
    assert frames[-1][0] == "response.completed"
    assert frames[-1][1]["response"]["output"][0]["content"][0]["text"] == "Hello"
    assert frames[-1][1]["response"]["usage"]["input_tokens"] == USAGE["prompt_tokens"]
    assert outcome.kind == EventKind.DONE
    assert outcome.usage == USAGE  # in chat form, for the usage record
    assert events.translate is None  # removed again once the chat answer ended


async def test_a_messages_stream_that_fails_midway_ends_with_an_error_event() -> None:
    events, redis = publisher()
    chat = ChatAnswer(TEXT[:1], end=UpstreamTimeout("The provider went quiet."))

    outcome = await answer_in_format(job(Endpoint.MESSAGES, MESSAGES_BODY, stream=True), events, chat)

    frames = parse_frames(await published(events, redis, outcome))
    assert [name for name, _ in frames] == ["message_start", "content_block_start", "content_block_delta"]
    assert outcome.kind == EventKind.ERROR
    assert outcome.status == 504
    assert (outcome.meta or {})[IN_BAND] is True
    [(name, error)] = parse_frames(outcome.data)
    assert name == "error"
    assert error["error"] == {"type": "timeout_error", "message": "The provider went quiet."}


async def test_a_providers_in_band_error_ends_the_stream_in_the_format() -> None:
    events, redis = publisher()
    in_band = {"error": {"message": "overloaded mid-stream", "type": "server_error", "code": "overloaded"}}
    chat = ChatAnswer([TEXT[0], in_band, chunk({"content": "never"})])

    outcome = await answer_in_format(job(Endpoint.RESPONSES, RESPONSES_BODY, stream=True), events, chat)

    relayed = await published(events, redis, outcome)
    assert b"never" not in relayed
    assert (outcome.kind, outcome.status, (outcome.meta or {}).get(IN_BAND)) == (EventKind.ERROR, 502, True)
    [(name, failed)] = parse_frames(outcome.data)
    assert name == "response.failed"
    assert failed["response"]["error"]["message"] == "overloaded mid-stream"
    assert failed["sequence_number"] == len(parse_frames(relayed))  # numbered on from the frames before it


async def test_a_failure_before_the_first_frame_is_the_routes_error_body() -> None:
    events, redis = publisher()
    failure = UpstreamHTTPError(429, b'{"error": {"message": "slow down", "type": "rate_limit"}}')
    failure.headers = {"retry-after": "3"}
    chat = ChatAnswer(end=failure)

    outcome = await answer_in_format(job(Endpoint.MESSAGES, MESSAGES_BODY, stream=True), events, chat)

    assert await published(events, redis, outcome) == b""
    assert (outcome.kind, outcome.status) == (EventKind.ERROR, 429)
    assert json.loads(outcome.data) == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert outcome.meta == {"headers": {"retry-after": "3"}}


async def test_an_error_event_of_the_chat_answer_before_any_frame_keeps_its_headers() -> None:
    events, _ = publisher()
    body = b'{"error": {"message": "no such model", "type": "invalid_request_error"}}'
    chat = ChatAnswer(end=StreamEvent(EventKind.ERROR, 404, body, meta={"headers": {"x-ratelimit-limit": "9"}}))

    outcome = await answer_in_format(job(Endpoint.RESPONSES, RESPONSES_BODY, stream=True), events, chat)

    assert (outcome.kind, outcome.status) == (EventKind.ERROR, 404)
    assert outcome.meta == {"headers": {"x-ratelimit-limit": "9"}}
    assert json.loads(outcome.data)["error"]["message"] == "no such model"  # OpenAI's shape on /v1/responses


async def test_a_malformed_request_is_a_400_in_the_routes_shape_and_reaches_no_model() -> None:
    events, _ = publisher()
    chat = ChatAnswer()
    body = {"model": "m", "messages": [{"role": "robot", "content": "hi"}], "max_tokens": 5}

    outcome = await answer_in_format(job(Endpoint.MESSAGES, body, stream=False), events, chat)

    assert (outcome.kind, outcome.status) == (EventKind.ERROR, 400)
    error = json.loads(outcome.data)
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith("messages[0].role:")
    assert chat.jobs == []


async def test_a_whole_answer_is_translated_with_its_usage() -> None:
    events, _ = publisher()
    body = json.dumps(completion({"content": "Hello"})).encode()
    chat = ChatAnswer(end=StreamEvent(EventKind.RESPONSE, data=body, meta={"usage": USAGE}))

    outcome = await answer_in_format(job(Endpoint.MESSAGES, MESSAGES_BODY, stream=False), events, chat)

    message = json.loads(outcome.data)
    assert (outcome.kind, outcome.usage) == (EventKind.RESPONSE, USAGE)
    assert (message["type"], message["content"]) == ("message", [{"type": "text", "text": "Hello"}])
    assert "stream_options" not in chat.chat


async def test_a_whole_answer_that_is_not_json_is_a_502() -> None:
    events, _ = publisher()
    chat = ChatAnswer(end=StreamEvent(EventKind.RESPONSE, data=b"<html>", meta={}))

    outcome = await answer_in_format(job(Endpoint.RESPONSES, RESPONSES_BODY, stream=False), events, chat)

    assert (outcome.kind, outcome.status) == (EventKind.ERROR, 502)


async def test_openai_endpoints_go_to_the_chat_answer_as_they_are() -> None:
    events, _ = publisher()
    chat = ChatAnswer()
    original = job(Endpoint.CHAT_COMPLETIONS, {"model": "m", "messages": []}, stream=True)

    await answer_in_format(original, events, chat)

    assert chat.jobs == [original]


def test_error_objects_of_bodies_of_every_kind() -> None:
    assert openai_error_of(b'{"error": {"message": "x"}}') == {"message": "x"}
    assert openai_error_of(b"gateway timeout")["message"] == "gateway timeout"
    assert openai_error_of(b"")["message"] == "The request failed."
    assert InvalidRequest("m").to_body()["error"] == openai_error_of(InvalidRequest("m").to_json())
