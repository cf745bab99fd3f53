"""A job of another inbound format (the Responses API, Anthropic Messages), answered with a worker's chat answer.

Workers answer chat completions: remote workers through the provider (or its adapter), local workers with
llama.cpp. A job that came in on ``/v1/responses`` or ``/v1/messages`` becomes a chat job here
(``Translation.request_to_chat``), the worker's own chat answer runs for it, and what that publishes is turned back
into the inbound format on its way out: each chat chunk through the stream's ``StreamTranslator`` (installed as
``EventPublisher.translate``), a whole answer through ``Translation.response_from_chat``. DONE and RESPONSE keep the
chat usage (``prompt_tokens``, ``completion_tokens``) for the usage record, whatever the format.

Errors are in the route's format too: before the first frame, an ERROR holds ``Translation.error_body`` (the client
gets it as a plain error response); after it, the translator's closing error frames (``StreamTranslator.error``), in
an ERROR marked ``contract.IN_BAND``. A provider's in-band error chunk ends the stream the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from bodhi_shared.api_formats import StreamTranslator, Translation, translation_for
from bodhi_shared.api_formats.sse import to_json
from bodhi_shared.contract import IN_BAND, Endpoint, EventKind, InferenceJob, StreamEvent
from bodhi_shared.errors import BodhiError, InvalidRequest, UpstreamError
from bodhi_shared.event_publisher import EventPublisher

log = logging.getLogger(__name__)

AnswerChat = Callable[[InferenceJob, EventPublisher], Awaitable[StreamEvent]]
MID_STREAM_ERROR_STATUS = 502  # a provider's in-band error event: it failed after answering 200
SSE_DATA = b"data: "


async def answer_in_format(job: InferenceJob, events: EventPublisher, answer_chat: AnswerChat) -> StreamEvent:
    """``answer_chat(job, events)`` for an OpenAI endpoint; for an inbound format with a translation, the same
    answer to the translated chat job, turned back into that format."""
    translation = translation_for(job.endpoint)
    if translation is None:
        return await answer_chat(job, events)
    return await TranslatedJob(job, translation).answer(events, answer_chat)


def openai_error_of(data: bytes) -> dict[str, Any]:
    """The OpenAI error object of an error body (``{"error": {...}}``); any other body as its message."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error: dict[str, Any] = body["error"]
        return error
    text = data.decode("utf-8", "replace").strip()[:500]
    return {"message": text or "The request failed.", "type": "api_error", "param": None, "code": None}


class TranslatedJob:
    """One job of an inbound format: its request, parsed once, and the chat job it becomes."""

    def __init__(self, job: InferenceJob, translation: Translation) -> None:
        self.job = job
        self.translation = translation
        try:
            request = json.loads(job.body)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        self.request: dict[str, Any] = request

    async def answer(self, events: EventPublisher, answer_chat: AnswerChat) -> StreamEvent:
        try:
            chat = self.translation.request_to_chat(self.request)
        except InvalidRequest as exc:
            return self._failed(exc)
        chat_job = replace(self.job, endpoint=Endpoint.CHAT_COMPLETIONS, body=to_json(chat), relay_usage_chunk=True)
        if not self.job.stream:
            return await self._whole(chat_job, events, answer_chat)
        return await self._streamed(chat_job, events, answer_chat)

    def _failed(self, exc: BodhiError) -> StreamEvent:
        log.info("request %s failed: %s", self.job.request_id, exc.message)
        return self.error_event(
            exc.status_code, openai_error_of(exc.to_json()), meta={"headers": exc.headers} if exc.headers else None
        )

    def error_event(self, status: int, error: dict[str, Any], *, meta: dict[str, Any] | None = None) -> StreamEvent:
        """An ERROR before anything was sent: the route's error body (a provider's headers kept in ``meta``)."""
        body = to_json(self.translation.error_body(status, error))
        return StreamEvent(EventKind.ERROR, status, body, meta=meta)

    async def _whole(self, chat_job: InferenceJob, events: EventPublisher, answer_chat: AnswerChat) -> StreamEvent:
        try:
            outcome = await answer_chat(chat_job, events)
            if outcome.kind != EventKind.RESPONSE:
                return self._relayed_error(outcome)
            chat = json.loads(outcome.data)
            if not isinstance(chat, dict):
                raise ValueError("not an object")
        except BodhiError as exc:
            return self._failed(exc)
        except ValueError:
            return self._failed(UpstreamError("The provider's answer is not a JSON object.", code="upstream_malformed"))
        answer = self.translation.response_from_chat(chat, request_id=self.job.request_id, request=self.request)
        return replace(outcome, data=to_json(answer))

    def _relayed_error(self, outcome: StreamEvent) -> StreamEvent:
        if outcome.kind != EventKind.ERROR:
            raise BodhiError(f"The chat answer ended with a {outcome.kind.name} event.")
        return self.error_event(outcome.status, openai_error_of(outcome.data), meta=outcome.meta)

    async def _streamed(self, chat_job: InferenceJob, events: EventPublisher, answer_chat: AnswerChat) -> StreamEvent:
        model = self.request.get("model")
        translator = self.translation.stream_translator(
            model=model if isinstance(model, str) else "", request_id=self.job.request_id, request=self.request
        )
        stream = _TranslatedStream(translator)
        events.translate = stream.frames
        try:
            outcome = await answer_chat(chat_job, events)
        except BodhiError as exc:
            if not stream.sent:
                return self._failed(exc)
            log.info("request %s failed mid-stream: %s", self.job.request_id, exc.message)
            outcome = StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json())
        finally:
            events.translate = None
        if outcome.kind == EventKind.DONE and stream.error is None:
            events.chunk(translator.finish(outcome.usage))
            return outcome
        if outcome.kind == EventKind.DONE:
            status, error = MID_STREAM_ERROR_STATUS, stream.error or {}
        elif outcome.kind == EventKind.ERROR:
            status, error = outcome.status, openai_error_of(outcome.data)
        else:
            raise BodhiError(f"The chat stream ended with a {outcome.kind.name} event.")
        if not stream.sent:
            return self.error_event(status, error, meta=outcome.meta)
        return StreamEvent(EventKind.ERROR, status, translator.error(status, error), meta={IN_BAND: True})


class _TranslatedStream:
    """The chat chunks a worker publishes, one ``data:`` frame each, as the frames of the inbound format."""

    def __init__(self, translator: StreamTranslator) -> None:
        self._translator = translator
        self.sent = False  # a frame of the answer has been queued: from now on errors are in-band
        self.error: dict[str, Any] | None = None  # a provider's in-band error chunk, which ends the stream

    def frames(self, frame: bytes) -> bytes:
        if self.error is not None:
            return b""
        payload = frame.strip()
        try:
            chunk = json.loads(payload.removeprefix(SSE_DATA)) if payload.startswith(SSE_DATA) else None
        except ValueError:  # remote workers relay JSON objects only (``upstream.stream_sse``): never expected
            chunk = None
        if not isinstance(chunk, dict):
            return b""
        if isinstance(chunk.get("error"), dict) and not chunk.get("choices"):
            self.error = chunk["error"]
            return b""
        translated = self._translator.feed(chunk)
        self.sent = self.sent or bool(translated)
        return translated
