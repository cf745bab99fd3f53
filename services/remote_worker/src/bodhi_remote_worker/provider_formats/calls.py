"""Chat completions answered by a provider of another format: the chat body translated by its adapter, sent with
httpx, and the answer translated back, whole (``forward_adapted``) or chunk by chunk (``stream_adapted``).

What comes back is what an OpenAI-compatible provider would have sent, so the inference job relays it the same
way: a ``chat.completion`` body, or ``chat.completion.chunk`` payloads (a usage-only chunk last, when the body
asks for ``stream_options.include_usage``), an in-band error as one ``{"error": {...}}`` payload that ends it.
The stored key is masked in all of it, as in ``upstream``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource

from bodhi_remote_worker.provider_formats import ProviderAdapter, adapter_for
from bodhi_remote_worker.provider_formats.chat_shapes import json_object
from bodhi_remote_worker.secret_mask import SecretMask
from bodhi_remote_worker.upstream import (
    Provider,
    map_httpx_errors,
    read_as_event_stream,
    status_error,
    with_extra_headers,
)
from bodhi_shared.contract import Endpoint
from bodhi_shared.errors import InvalidRequest, UpstreamError, UpstreamHTTPError

SSE_DONE = "[DONE]"


def serving_adapter(provider: Provider, endpoint: str) -> ProviderAdapter | None:
    """The adapter for a call to ``provider`` (None: send the body as it is); 400 for an endpoint other than chat
    completions, which only an ``openai`` provider serves."""
    adapter = adapter_for(provider.api_format)
    if adapter is not None and endpoint != Endpoint.CHAT_COMPLETIONS:
        named = f"API model `{provider.api_model_name}`" if provider.api_model_name else "This API model"
        raise InvalidRequest(
            f"{named} speaks the `{adapter.api_format}` API format, which serves chat completions only, not "
            f"`/v1/{endpoint}`: use an API model of the `openai` format for it.",
            param="model",
            code="unsupported_endpoint",
        )
    return adapter


def adapted_headers(provider: Provider, adapter: ProviderAdapter) -> dict[str, str]:
    """The API model's extra headers, then the format's own (its key header) and the content type, which win."""
    return with_extra_headers(
        provider.extra_headers, {"Content-Type": "application/json", **adapter.headers(provider.api_key)}
    )


def _request(
    client: httpx.AsyncClient,
    provider: Provider,
    adapter: ProviderAdapter,
    chat: dict[str, Any],
    *,
    client_request_id: str | None,
) -> httpx.Request:
    path, body = adapter.request_from_chat(chat)
    headers = adapted_headers(provider, adapter)
    if (
        client_request_id
        and len(client_request_id) <= 200
        and client_request_id.isascii()
        and client_request_id.isprintable()
    ):
        headers["X-Request-Id"] = client_request_id  # the client's own id, as upstream sends it
    return client.build_request(
        "POST", f"{provider.base_url}/{path}", content=json.dumps(body).encode(), headers=headers
    )


def adapted_status_error(
    provider: Provider, adapter: ProviderAdapter, response: httpx.Response, body: bytes, mask: SecretMask
) -> UpstreamError:
    """A non-2xx answer, as ``upstream.status_error`` makes it, with the provider's error body in OpenAI's shape."""
    status = response.status_code
    if status in (401, 403) or status < 400:
        return status_error(provider, response, body, mask)
    error = adapter.error_from_provider(status, mask.error(body))
    return UpstreamHTTPError(status, json.dumps({"error": error}).encode(), headers=response.headers)


def _chat(body: bytes) -> dict[str, Any]:
    chat = json_object(body)
    if chat is None:  # the API sends only parsed JSON objects
        raise InvalidRequest("The request body must be a JSON object.")
    return chat


async def forward_adapted(
    client: httpx.AsyncClient,
    provider: Provider,
    adapter: ProviderAdapter,
    body: bytes,
    *,
    client_request_id: str | None = None,
) -> bytes:
    """A non-streamed chat completion from the provider: its answer as a ``chat.completion`` body."""
    chat = _chat(body)
    mask = SecretMask(provider.api_key, carried=(body,))
    request = _request(client, provider, adapter, {**chat, "stream": False}, client_request_id=client_request_id)
    with map_httpx_errors(provider):
        response = await client.send(request)
    if response.status_code >= 300:
        raise adapted_status_error(provider, adapter, response, response.content, mask)
    answer = json_object(response.content)
    if answer is None:
        raise UpstreamError(
            f"The provider at {response.url.host} answered with something other than a JSON object. Check the API "
            "model's base URL and API format.",
            code="upstream_malformed_response",
        )
    completion = adapter.chat_from_response(answer, model=str(chat.get("model", "")))
    return mask.key(json.dumps(completion).encode())


async def stream_adapted(
    client: httpx.AsyncClient,
    provider: Provider,
    adapter: ProviderAdapter,
    body: bytes,
    *,
    client_request_id: str | None = None,
) -> AsyncIterator[bytes]:
    """A streamed chat completion from the provider: each ``chat.completion.chunk`` payload, on one line."""
    chat = _chat(body)
    options = chat.get("stream_options")
    wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    translation = adapter.chat_stream(model=str(chat.get("model", "")))
    mask = SecretMask(provider.api_key, carried=(body,))
    request = _request(client, provider, adapter, {**chat, "stream": True}, client_request_id=client_request_id)
    with map_httpx_errors(provider):
        response = await client.send(request, stream=True)
        try:
            if response.status_code >= 300:
                raise adapted_status_error(provider, adapter, response, await response.aread(), mask)
            read_as_event_stream(response, lambda what: malformed_stream(provider, adapter, what))
            async for event in EventSource(response).aiter_sse():
                payload = event.data.strip()
                if not payload or payload == SSE_DONE:
                    continue
                data = json_object(payload.encode())
                if data is None:
                    raise malformed_stream(provider, adapter, "sent an event whose data is not a JSON object")
                for out in translation.feed(event.event, data):
                    if "error" in out:  # in-band: it ends the stream
                        yield mask.error(json.dumps(out).encode())
                        return
                    yield mask.key(json.dumps(out).encode())
            for out in translation.finish():
                if out.get("choices") or wants_usage:
                    yield mask.key(json.dumps(out).encode())
        finally:
            await response.aclose()


def malformed_stream(provider: Provider, adapter: ProviderAdapter, what: str) -> UpstreamError:
    host = httpx.URL(provider.base_url).host
    return UpstreamError(
        f"The provider at {host} {what}, not an event stream of the `{adapter.api_format}` API format. Check the "
        "API model's base URL and API format.",
        code="upstream_malformed_stream",
    )
