"""The inference routes in other APIs' formats: ``POST /v1/responses`` (OpenAI's Responses API) and
``POST /v1/messages`` (Anthropic Messages), on every model.

The API stays a router for them: it checks only what no answer can do without (``inbound_wire``), rewrites
``model`` and passes the client's body to the worker, which translates it to a chat completion and its answer back
(``bodhi_shared.translated_jobs``), or passes it through to a provider of the same format. What such a request
adds to the flow of ``inference.run_inference`` is an ``InboundRequest``: the checks, a local alias's request
defaults in the format's own names, how its stream ends and fails (``stream_wire``), and for the Responses API
``previous_response_id`` and ``store`` (``responses_store``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

from bodhi_api.auth.principal import Principal
from bodhi_api.http_errors import NotFound
from bodhi_api.model_routing import Route
from bodhi_api.resources import Resources
from bodhi_api.responses_store import find_response, save_response
from bodhi_api.stream_wire import STATE_KEY, MessagesWire, ResponsesWire, StreamWire
from bodhi_shared.api_formats.responses import input_items_of
from bodhi_shared.contract import Endpoint
from bodhi_shared.inbound_wire import check_inbound_fields

log = logging.getLogger(__name__)

# A local alias's request defaults (``RequestParams``) -> the field of each format that means the same; the others
# (`seed`) have none. `system_prompt` goes where each format puts its system prompt.
ALIAS_DEFAULTS = {
    Endpoint.RESPONSES: {"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_output_tokens"},
    Endpoint.MESSAGES: {
        "temperature": "temperature",
        "top_p": "top_p",
        "max_tokens": "max_tokens",
        "stop": "stop_sequences",
    },
}


class InboundRequest:
    """One request of an inbound format; ``inference.run_inference`` calls its steps in order."""

    endpoint: Endpoint

    def __init__(
        self, resources: Resources, principal: Principal, *, request_id: str, state: dict[str, Any] | None = None
    ) -> None:
        """``state``: the request's ASGI scope state, where its stream's wire is left (``stream_wire.STATE_KEY``)."""
        self.resources, self.principal, self.request_id = resources, principal, request_id
        self.body: dict[str, Any] = {}
        self.model = ""
        self._state = state
        self._wire: StreamWire | None = None

    async def prepare(self, body: dict[str, Any]) -> None:
        """Check the body (400 before any job exists)."""
        check_inbound_fields(body, self.endpoint)
        self.body = body
        self.model = str(body["model"])  # the id asked for, before ``upstream_body`` rewrites it

    def upstream_body(self, body: dict[str, Any], route: Route) -> bytes:
        """The worker's body: the client's, ``model`` rewritten, a local alias's defaults where it sets nothing."""
        body["model"] = route.upstream_model
        if route.local is not None:
            apply_alias_defaults(self.endpoint, body, route.request_params)
        return json.dumps(body).encode()

    def wire(self) -> StreamWire:
        """The stream's wire (one per request)."""
        if self._wire is None:
            self._wire = self._new_wire()
            if self._state is not None:
                self._state[STATE_KEY] = self._wire
        return self._wire

    def _new_wire(self) -> StreamWire:
        raise NotImplementedError

    async def answered(self, data: bytes) -> None:
        """A whole answer (``data``, its body) is about to go to the client."""

    async def finished(self) -> None:
        """The stream has been written to its end."""


def apply_alias_defaults(endpoint: Endpoint, body: dict[str, Any], params: dict[str, Any]) -> None:
    """``inference.apply_request_params`` in the names of ``endpoint``'s format."""
    names = ALIAS_DEFAULTS[endpoint]
    for key, value in params.items():
        if key in names:
            body.setdefault(names[key], [value] if key == "stop" and isinstance(value, str) else value)
    prompt = params.get("system_prompt")
    if not prompt:
        return
    if endpoint == Endpoint.MESSAGES:
        body.setdefault("system", prompt)
    elif not body.get("instructions") and not _has_system_item(body.get("input")):
        body["instructions"] = prompt


def _has_system_item(items: Any) -> bool:
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("role") in ("system", "developer") for item in items
    )


class MessagesRequest(InboundRequest):
    endpoint = Endpoint.MESSAGES

    def _new_wire(self) -> StreamWire:
        return MessagesWire()


class ResponsesRequest(InboundRequest):
    """``previous_response_id`` is expanded here, before the job (the worker sees the whole conversation in
    ``input``), and the final Response is stored unless ``store`` is false."""

    endpoint = Endpoint.RESPONSES

    def __init__(
        self, resources: Resources, principal: Principal, *, request_id: str, state: dict[str, Any] | None = None
    ) -> None:
        super().__init__(resources, principal, request_id=request_id, state=state)
        self.input_items: list[dict[str, Any]] = []
        self._saving: asyncio.Task[Any] | None = None

    @property
    def store(self) -> bool:
        return self.body.get("store") is not False

    async def prepare(self, body: dict[str, Any]) -> None:
        await super().prepare(body)
        items = _as_items(body["input"])
        previous_id = body.get("previous_response_id")
        if previous_id is not None:
            previous = await find_response(self.resources.db, previous_id, user_id=self.principal.user.id)
            if previous is None:
                raise NotFound(
                    f"Previous response with id '{previous_id}' not found.",
                    param="previous_response_id",
                    code="response_not_found",
                )
            # The stored conversation, then what it answered, then the new input; `instructions` are the new
            # request's only (as in OpenAI's API), never carried over.
            items = [*previous.input_items, *input_items_of(previous.response), *items]
            body["input"] = items
        self.input_items = items

    def _new_wire(self) -> StreamWire:
        on_final = self._stream_ended if self.store else None
        return ResponsesWire(request=self.body, request_id=self.request_id, on_final=on_final)

    def _stream_ended(self, response: dict[str, Any]) -> None:
        # Saved at once, whether or not the client stays for the end of its stream; awaited by ``finished``.
        self._saving = self.resources.spawn(self._save(response))

    async def finished(self) -> None:
        if self._saving is not None:
            await asyncio.wait({self._saving})  # the client's next request (previous_response_id) must find it

    async def answered(self, data: bytes) -> None:
        if not self.store:
            return
        try:
            response = json.loads(data)
        except ValueError:
            response = None
        if isinstance(response, dict) and response.get("object") == "response":
            await self._save(response)

    async def _save(self, response: dict[str, Any]) -> None:
        if not isinstance(response.get("id"), str):
            return
        try:
            await save_response(
                self.resources.db,
                user_id=self.principal.user.id,
                model=self.model,
                input_items=self.input_items,
                response=response,
                retention=timedelta(days=self.resources.settings.responses_retention_days),
            )
        except Exception as exc:  # the answer is the client's either way; only a later previous_response_id fails
            log.warning("request %s: its response could not be stored (%s)", self.request_id, type(exc).__name__)


def _as_items(value: Any) -> list[dict[str, Any]]:
    """``input`` as a list of items: a string is one user message."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value)
