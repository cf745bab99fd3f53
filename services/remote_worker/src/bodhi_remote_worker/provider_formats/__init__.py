"""Providers that do not speak chat completions: Anthropic Messages and the OpenAI Responses API.

The gateway speaks chat completions inside (every inbound format is turned into a chat body, see
``bodhi_shared.api_formats``); an API model's ``api_format`` says what its provider speaks. For one that is not
``openai``, an adapter turns the chat body into the provider's request (``request_from_chat``), its answer back
into a ``chat.completion`` (``chat_from_response``) or, event by event, into ``chat.completion.chunk`` dicts
(``chat_stream``), and its error bodies into OpenAI error objects (``error_from_provider``). Adapters are pure:
``bodhi_remote_worker.provider_formats.calls`` does the HTTP.
"""

from __future__ import annotations

from typing import Any, Protocol

from bodhi_remote_worker.provider_formats.anthropic import ANTHROPIC
from bodhi_remote_worker.provider_formats.openai_responses import OPENAI_RESPONSES
from bodhi_shared.errors import UpstreamError

__all__ = ["ADAPTERS", "OPENAI", "ProviderAdapter", "ProviderStream", "adapter_for"]

OPENAI = "openai"  # chat completions as they are: no adapter


class ProviderStream(Protocol):
    """One streamed answer's translation; it keeps what the chunks need (ids, tool-call indexes, usage)."""

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """One provider SSE event (its ``event:`` name, its parsed data) -> zero or more chunk dicts; an in-band
        error becomes one ``{"error": {...}}`` dict, as OpenAI-compatible providers send it, and ends the stream."""
        ...

    def finish(self) -> list[dict[str, Any]]:
        """The closing chunks: the finish_reason, then a usage-only chunk (``choices`` empty). Raises
        ``UpstreamError`` when the provider's stream ended before its closing event."""
        ...


class ProviderAdapter(Protocol):
    api_format: str
    native_endpoint: str  # the inbound endpoint this provider speaks natively ("messages", "responses")

    def request_from_chat(self, chat: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(path under the base URL, body in the provider's format); ``InvalidRequest`` for what it cannot say."""
        ...

    def headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the key (none for an empty key) and the format's own."""
        ...

    def chat_from_response(self, body: dict[str, Any], *, model: str) -> dict[str, Any]:
        """A non-streamed answer -> a ``chat.completion`` with usage; ``UpstreamError`` if it is malformed."""
        ...

    def chat_stream(self, *, model: str) -> ProviderStream: ...

    def error_from_provider(self, status: int, body: bytes) -> dict[str, Any]:
        """The provider's error body -> an OpenAI error object ``{"message", "type", "param", "code"}``."""
        ...


ADAPTERS: dict[str, ProviderAdapter] = {adapter.api_format: adapter for adapter in (ANTHROPIC, OPENAI_RESPONSES)}


def adapter_for(api_format: str) -> ProviderAdapter | None:
    """The adapter of ``api_format``; None for ``openai`` (the body goes as it is)."""
    if api_format == OPENAI:
        return None
    adapter = ADAPTERS.get(api_format)
    if adapter is None:  # an API newer than this worker
        raise UpstreamError(
            f"This worker does not know the API format `{api_format}`: upgrade the remote workers.",
            code="unsupported_api_format",
        )
    return adapter
