"""Jobs of the inbound formats (``/v1/responses``, ``/v1/messages``) on a remote worker.

A provider that speaks the inbound format itself (its adapter's ``native_endpoint``, e.g. an ``anthropic`` API model
for ``/v1/messages``) gets the client's body as it is, at ``{base_url}/{endpoint}``, and its answer goes back as it
is: the stream's events with their own names, the body unchanged, its errors in its own shape (``passthrough``).
Every other provider gets the request as a chat completion, sent the way chat requests go (through its adapter,
``inference_job.relay``), and its answer is translated back (``bodhi_shared.translated_jobs``).

Either way DONE and RESPONSE carry the usage in chat form (``prompt_tokens``, ``completion_tokens``) for the usage
record; a passthrough reads it from the few events that hold it (``USAGE_EVENTS``), the others go by unparsed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent

from bodhi_remote_worker.context import RemoteWorkerContext
from bodhi_remote_worker.provider_formats import adapter_for
from bodhi_remote_worker.provider_formats.calls import adapted_headers, malformed_stream
from bodhi_remote_worker.secret_mask import SecretMask
from bodhi_remote_worker.upstream import Provider, map_httpx_errors, read_as_event_stream, status_error
from bodhi_shared.api_formats import translation_for
from bodhi_shared.api_formats.sse import to_json
from bodhi_shared.contract import IN_BAND, EventKind, InferenceJob, StreamEvent
from bodhi_shared.errors import BodhiError, UpstreamError, UpstreamHTTPError
from bodhi_shared.event_publisher import EventPublisher
from bodhi_shared.translated_jobs import MID_STREAM_ERROR_STATUS, answer_in_format, openai_error_of

log = logging.getLogger(__name__)

Relay = Callable[[RemoteWorkerContext, InferenceJob, EventPublisher], Awaitable[StreamEvent]]

# The events of a native stream that end it: its last one, or an error (after which nothing follows).
LAST_EVENTS = {
    "messages": frozenset({"message_stop"}),
    "responses": frozenset({"response.completed", "response.incomplete"}),
}
ERROR_EVENTS = {"messages": frozenset({"error"}), "responses": frozenset({"error", "response.failed"})}
# The events that hold the usage; every other event is relayed without being parsed.
USAGE_EVENTS = {
    "messages": frozenset({"message_start", "message_delta"}),
    "responses": frozenset({"response.completed", "response.incomplete", "response.failed"}),
}


async def answer(
    worker: RemoteWorkerContext, job: InferenceJob, events: EventPublisher, *, relay: Relay
) -> StreamEvent:
    """The job's answer: ``relay`` for OpenAI endpoints, a passthrough or a translation for the inbound formats."""
    if translation_for(job.endpoint) is not None and job.upstream is not None and native_to(job) == job.endpoint:
        return await passthrough(worker, job, events)
    return await answer_in_format(job, events, lambda chat, chat_events: relay(worker, chat, chat_events))


def native_to(job: InferenceJob) -> str | None:
    """The inbound endpoint the job's provider speaks itself, if any."""
    adapter = adapter_for(job.upstream.api_format) if job.upstream is not None else None
    return adapter.native_endpoint if adapter is not None else None


async def passthrough(worker: RemoteWorkerContext, job: InferenceJob, events: EventPublisher) -> StreamEvent:
    """Send the body to a provider of the same format and relay its answer as it is; Bodhi's own errors (a timeout,
    a refused key) before the first byte in the route's error shape."""
    assert job.upstream is not None
    translation = translation_for(job.endpoint)
    assert translation is not None
    call = worker.metrics.provider_call(job.upstream.api_model_name)
    native = _Native(worker, job, worker.provider(job.upstream))
    try:
        answered = await (native.stream(events, call.first_byte) if job.stream else native.whole())
    except BodhiError as exc:
        call.failed(exc)
        if native.relayed:
            raise  # mid-stream: the API ends the stream in the route's format
        log.info("request %s failed: %s", job.request_id, exc.message)
        meta = {"headers": exc.headers} if exc.headers else None
        if isinstance(exc, UpstreamHTTPError):  # the provider's own error body, in the route's shape already
            return StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json(), meta=meta)
        body = to_json(translation.error_body(exc.status_code, openai_error_of(exc.to_json())))
        return StreamEvent(EventKind.ERROR, exc.status_code, body, meta=meta)
    call.done()
    return answered


class _Native:
    """One call to a provider in the job's own format."""

    def __init__(self, worker: RemoteWorkerContext, job: InferenceJob, provider: Provider) -> None:
        self._worker, self._job, self._provider = worker, job, provider
        adapter = adapter_for(provider.api_format)
        assert adapter is not None  # a native provider is never an `openai` one
        self._adapter = adapter
        self._endpoint = str(job.endpoint)
        self._body = _native_body(job)
        self._mask = SecretMask(provider.api_key, carried=(self._body,))
        self.relayed = False  # a frame went to the client: a failure is in-band from now on
        translation = translation_for(self._endpoint)
        assert translation is not None
        self._translation = translation

    def _error_body(self, error: dict[str, Any]) -> bytes:
        return to_json(self._translation.error_body(MID_STREAM_ERROR_STATUS, error))

    def _request(self) -> httpx.Request:
        headers = adapted_headers(self._provider, self._adapter)
        # The client's own id when it sent one, else the server's: either way the call can be traced at the provider.
        if (
            (client_id := self._job.client_request_id or self._job.request_id)
            and client_id.isascii()
            and client_id.isprintable()
        ):
            headers["X-Request-Id"] = client_id[:200]
        url = f"{self._provider.base_url}/{self._endpoint}"
        return self._worker.http.build_request("POST", url, content=self._body, headers=headers)

    async def whole(self) -> StreamEvent:
        with map_httpx_errors(self._provider):
            response = await self._worker.http.send(self._request())
        if response.status_code >= 300:
            raise status_error(self._provider, response, response.content, self._mask)
        body = self._mask.key(response.content)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise UpstreamError("The provider's answer is not a JSON object.", code="upstream_malformed")
        return StreamEvent(EventKind.RESPONSE, data=body, meta={"usage": chat_usage(self._endpoint, parsed)})

    async def stream(self, events: EventPublisher, first_byte: Callable[[], None]) -> StreamEvent:
        usage: dict[str, Any] = {}
        with map_httpx_errors(self._provider):
            response = await self._worker.http.send(self._request(), stream=True)
            try:
                if response.status_code >= 300:
                    raise status_error(self._provider, response, await response.aread(), self._mask)
                read_as_event_stream(
                    response, lambda what: malformed_stream(self._provider, self._adapter, what), missing_ok=False
                )
                ended = False
                async for event in EventSource(response).aiter_sse():
                    first_byte()
                    name, data = _named(event)
                    if ended or not data:
                        continue  # read on to the end: a response read whole gives its connection back to the pool
                    if name in ERROR_EVENTS[self._endpoint]:
                        data = self._mask.error(data)
                        if not self.relayed:  # nothing sent yet: the client gets it as an error response
                            error = _error_object(data)
                            return StreamEvent(EventKind.ERROR, MID_STREAM_ERROR_STATUS, self._error_body(error))
                        frame = _frame(name, data)
                        return StreamEvent(EventKind.ERROR, MID_STREAM_ERROR_STATUS, frame, meta={IN_BAND: True})
                    data = self._mask.key(data)
                    if name in USAGE_EVENTS[self._endpoint]:
                        usage |= _usage_in(self._endpoint, data)
                    events.chunk(_frame(name, data))
                    self.relayed = True
                    ended = name in LAST_EVENTS[self._endpoint]
                if not ended:
                    raise malformed_stream(self._provider, self._adapter, "ended the stream before its last event")
                return StreamEvent(EventKind.DONE, meta={"usage": _chat_form(usage)})
            finally:
                await response.aclose()


def _native_body(job: InferenceJob) -> bytes:
    """The body as the client sent it; for the Responses API without ``previous_response_id``, which the API has
    already expanded into ``input`` (the provider would put the conversation in front of it a second time), and with
    ``store: false``: Bodhi keeps the conversation (``responses_store``), the provider need not (as for every
    ``openai-responses`` call, ``provider_formats.openai_responses``)."""
    if job.endpoint != "responses":
        return job.body
    body = json.loads(job.body)
    body.pop("previous_response_id", None)
    body["store"] = False
    return to_json(body)


def _named(event: ServerSentEvent) -> tuple[str, bytes]:
    """The event's name and its data on one line; a provider that leaves out ``event:`` names it in ``type``."""
    data = event.data.strip().replace("\n", " ").encode()
    name = event.event
    if name == "message" and data:  # httpx-sse's name for an event without an `event:` line
        try:
            kind = json.loads(data).get("type")
        except (ValueError, AttributeError):
            kind = None
        name = kind if isinstance(kind, str) else name
    return name, data


def _frame(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def _error_object(data: bytes) -> dict[str, Any]:
    """An OpenAI error object for a native error event: Anthropic's ``{"type": "error", "error": {...}}``, the
    Responses API's ``{"type": "error", "message": ...}`` or a ``response.failed``'s ``response.error``."""
    try:
        event = json.loads(data)
    except ValueError:
        event = None
    event = event if isinstance(event, dict) else {}
    response = event.get("response")
    error = event.get("error") or (response.get("error") if isinstance(response, dict) else None) or event
    message = error.get("message") if isinstance(error, dict) else None
    text = message if isinstance(message, str) and message else "The provider's stream failed."
    return {"message": text, "type": "upstream_error", "param": None, "code": "upstream_error"}


def _usage_in(endpoint: str, data: bytes) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(event, dict):
        return {}
    if endpoint == "messages":
        message = event.get("message")
        usage = message.get("usage") if isinstance(message, dict) else event.get("usage")
    else:
        response = event.get("response")
        usage = response.get("usage") if isinstance(response, dict) else None
    return {k: v for k, v in usage.items() if _is_count(v)} if isinstance(usage, dict) else {}


def chat_usage(endpoint: str, body: dict[str, Any]) -> dict[str, int] | None:
    """A native answer's usage in chat form."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    return _chat_form({k: v for k, v in usage.items() if _is_count(v)})


def _chat_form(usage: dict[str, Any]) -> dict[str, int]:
    """Anthropic's and the Responses API's counts (``input_tokens``, ``output_tokens``) as chat usage; Anthropic's
    cached input counts as input."""
    prompt = sum(usage.get(k, 0) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
    completion = usage.get("output_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
