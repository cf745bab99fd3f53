"""Serving the OpenAI Responses API and Anthropic Messages through chat-completions providers.

Workers speak chat completions to every provider (and to llama.cpp); a request that came in on ``/v1/responses``
or ``/v1/messages`` is translated on the worker: ``request_to_chat`` turns the inbound body into a chat body,
and the chat answer is turned back, whole (``response_from_chat``) or chunk by chunk (``stream_translator``),
into the inbound format. Errors go out in that format too (``error_body``, ``StreamTranslator.error``).

Everything here is pure: no I/O, no settings; ``translation_for`` picks the translation of an endpoint.
"""

from __future__ import annotations

from typing import Any, Protocol

from bodhi_shared.api_formats.anthropic_messages import MESSAGES
from bodhi_shared.api_formats.responses import RESPONSES

__all__ = ["MESSAGES", "RESPONSES", "StreamTranslator", "Translation", "translation_for"]


class StreamTranslator(Protocol):
    """One stream's translation; it keeps the state the inbound format needs (open items, sequence numbers)."""

    def feed(self, chunk: dict[str, Any]) -> bytes:
        """One ``chat.completion.chunk`` (parsed JSON) -> zero or more SSE frames of the inbound format."""
        ...

    def finish(self, usage: dict[str, Any] | None) -> bytes:
        """The closing frames; ``usage`` in chat form (``prompt_tokens``, ``completion_tokens``), or None to use a
        usage chunk seen by ``feed`` (zeros when there was none)."""
        ...

    def error(self, status: int, error: dict[str, Any]) -> bytes:
        """An in-band failure after the stream began; ``error`` is an OpenAI error object."""
        ...


class Translation(Protocol):
    endpoint: str  # "responses" or "messages"

    def request_to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat-completions body; ``bodhi_shared.errors.InvalidRequest`` (400, with ``param``) if malformed."""
        ...

    def response_from_chat(
        self, chat: dict[str, Any], *, request_id: str, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A non-streamed ``chat.completion`` -> a Response object / an Anthropic Message; ``request`` (the
        inbound body), when given, is echoed where the format echoes it (a Response's instructions, tools)."""
        ...

    def stream_translator(self, *, model: str, request_id: str, request: dict[str, Any]) -> StreamTranslator:
        """A translator for one stream; ``request`` is the inbound body."""
        ...

    def error_body(self, status: int, error: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed error in the route's shape: OpenAI's for responses, Anthropic's for messages."""
        ...


TRANSLATIONS: dict[str, Translation] = {RESPONSES.endpoint: RESPONSES, MESSAGES.endpoint: MESSAGES}


def translation_for(endpoint: str) -> Translation | None:
    """The translation of an inbound endpoint; None for the endpoints workers forward as they are
    (``chat/completions``, ``embeddings``, ``completions``)."""
    return TRANSLATIONS.get(endpoint)
