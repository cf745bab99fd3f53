"""Calls to OpenAI-compatible providers with httpx, their failures mapped onto Bodhi's error tree."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import httpx
from httpx_sse import EventSource

from bodhi_remote_worker.secret_mask import SecretMask
from bodhi_shared.errors import (
    ProviderAuthenticationFailed,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider endpoint with its key opened: exists only inside a remote worker, never on the wire."""

    base_url: str
    api_key: str = field(repr=False)
    api_model_name: str = ""  # for errors that tell the caller which API model needs a new key
    api_format: str = "openai"  # what the provider speaks: bodhi_remote_worker.provider_formats
    extra_headers: Mapping[str, str] = field(default_factory=dict)  # the API model's own, sent on every call


SSE_DONE = "[DONE]"


@contextlib.contextmanager
def map_httpx_errors(upstream: Provider) -> Iterator[None]:
    """Turn httpx's exceptions into ours; the messages name the host, never the key."""
    host = httpx.URL(upstream.base_url).host
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"Connection failed: {host} did not answer in time ({type(exc).__name__}).") from exc
    except httpx.ConnectError as exc:
        raise UpstreamUnreachable(
            f"Network error: cannot connect to {host}. Check the base URL and the network."
        ) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"Connection failed: the exchange with {host} broke off ({type(exc).__name__}).") from exc


def auth_headers(api_key: str) -> dict[str, str]:
    """The ``Authorization`` header that carries ``api_key`` as a bearer token; none for a keyless provider."""
    if not api_key:  # an empty key means a keyless upstream; "Bearer " alone is an invalid header
        return {}
    return {"Authorization": f"Bearer {api_key}"}


def with_extra_headers(extra: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """An API model's extra headers, then Bodhi's own (``own``: the key, the content type, the format's), which
    win whatever their case: an extra header never replaces one of them."""
    taken = {name.lower() for name in own}
    return {**{name: value for name, value in extra.items() if name.lower() not in taken}, **own}


def _request(
    client: httpx.AsyncClient, upstream: Provider, endpoint: str, body: bytes, *, client_request_id: str | None
) -> httpx.Request:
    headers = with_extra_headers(
        upstream.extra_headers, {"Content-Type": "application/json", **auth_headers(upstream.api_key)}
    )
    if client_request_id and _is_header_safe(client_request_id):
        headers["X-Request-Id"] = client_request_id  # the client's own id, so it can trace the call at the provider
    return client.build_request("POST", f"{upstream.base_url}/{endpoint}", content=body, headers=headers)


def _is_header_safe(value: str) -> bool:
    """Printable ASCII of a sane length: a malformed id is left out rather than failing the request."""
    return len(value) <= 200 and value.isascii() and value.isprintable()


def status_error(upstream: Provider, response: httpx.Response, body: bytes, mask: SecretMask) -> UpstreamError:
    """The error a non-2xx answer becomes; the provider's body is masked before anyone sees it."""
    status = response.status_code
    if status in (401, 403):
        log.info(
            "provider %s refused the key of API model %r: HTTP %s", response.url.host, upstream.api_model_name, status
        )
        return ProviderAuthenticationFailed(api_model_name=upstream.api_model_name, upstream_status=status)
    if status < 400:  # never followed: a redirect could point anywhere, a metadata service included
        return UpstreamError(
            f"The provider at {response.url.host} answered HTTP {status}, a redirect, which Bodhi does not follow. "
            "Check the API model's base URL.",
            code="upstream_redirect",
        )
    return UpstreamHTTPError(status, mask.error(body), headers=response.headers)


async def stream_sse(
    client: httpx.AsyncClient,
    upstream: Provider,
    body: bytes,
    *,
    endpoint: str = "chat/completions",
    client_request_id: str | None = None,
) -> AsyncIterator[bytes]:
    """Yield the ``data:`` payload of each SSE event the provider streams, up to ``[DONE]``, on one line (a payload
    split over several ``data:`` lines is joined); the stored key is masked in every payload, and an in-band error
    event is masked as an error body."""
    mask = SecretMask(upstream.api_key, carried=(body,))
    request = _request(client, upstream, endpoint, body, client_request_id=client_request_id)
    with map_httpx_errors(upstream):
        response = await client.send(request, stream=True)
        try:
            if response.status_code >= 300:
                raise status_error(upstream, response, await response.aread(), mask)
            read_as_event_stream(response, lambda what: malformed_stream(upstream, what))
            done = finished = False
            async for event in EventSource(response).aiter_sse():
                # httpx-sse frames the events: comments (": keep-alive"), `event:`/`id:`/`retry:` fields, CRLF or
                # CR line ends, and an event's `data:` lines joined with "\n"
                payload = event.data.strip()
                if done or not payload:
                    continue  # an event without data (a bare `event:` or `id:`)
                if payload == SSE_DONE:
                    # Read on to the end of the body: a fully read response returns its connection to the pool,
                    # one closed early takes the connection down with it.
                    done = True
                    continue
                data = payload.encode()
                if "\n" in payload:
                    data = _one_line(upstream, data)
                # A client's SDK would fail on it: end the stream with a clear error. Braces only, not a full parse:
                # this runs for every chunk of every stream.
                if not (data.startswith(b"{") and data.endswith(b"}")):
                    raise malformed_stream(upstream, "sent an event whose data is not a JSON object")
                if event.event == "error" or b'"error"' in data:
                    finished = True  # an in-band error ends a stream: some providers close it without [DONE]
                    yield mask.error(data)
                    continue
                finished = finished or _has_finish_reason(data)
                yield mask.key(data)
            if not done and not finished:
                raise malformed_stream(upstream, "ended the stream early (no [DONE] and no finish_reason)")
        finally:
            await response.aclose()


def _one_line(upstream: Provider, data: bytes) -> bytes:
    """A JSON payload sent over several ``data:`` lines, on one line: the client gets it as one ``data:`` line.

    A raw line break cannot be inside a JSON string (it must be escaped there), so in valid JSON each one is
    whitespace between two tokens: a space in its place keeps the value, and every other byte stays as sent. Only
    a multi-line event pays for the full parse, which also catches two events sent without the blank line between.
    """
    joined = data.replace(b"\n", b" ")
    try:
        value = json.loads(joined)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise malformed_stream(upstream, "sent an event whose data is not a JSON object")
    return joined


_FINISH_REASON = re.compile(rb'"finish_reason"\s*:\s*"')


def _has_finish_reason(data: bytes) -> bool:
    """Whether a chunk ends a choice: a stream cut after one is complete enough even without ``[DONE]``."""
    return b"finish_reason" in data and _FINISH_REASON.search(data) is not None


EVENT_STREAM = "text/event-stream"


def read_as_event_stream(
    response: httpx.Response, refuse: Callable[[str], UpstreamError], *, missing_ok: bool = True
) -> None:
    """Refuse a 200 that is not an event stream (an HTML page from a proxy, a JSON body), which would read as an
    empty answer: ``refuse`` makes the error from what was answered. A missing content type passes when
    ``missing_ok``. What passes is labelled ``text/event-stream`` in lower case, as httpx-sse's EventSource needs."""
    content_type = response.headers.get("content-type", "")
    if not content_type.lower().startswith(EVENT_STREAM) and (content_type or not missing_ok):
        raise refuse(f"answered a stream request with {content_type.split(';')[0] or 'no content type'}")
    response.headers["content-type"] = EVENT_STREAM + content_type[len(EVENT_STREAM) :]


def malformed_stream(upstream: Provider, what: str) -> UpstreamError:
    host = httpx.URL(upstream.base_url).host
    return UpstreamError(
        f"The provider at {host} {what}, not an OpenAI-compatible event stream. Check the API model's base URL.",
        code="upstream_malformed_stream",
    )


async def forward(
    client: httpx.AsyncClient,
    upstream: Provider,
    body: bytes,
    *,
    endpoint: str = "chat/completions",
    client_request_id: str | None = None,
) -> bytes:
    """Send a non-streamed request; return the provider's body (the stored key masked, should it be echoed)."""
    mask = SecretMask(upstream.api_key, carried=(body,))
    request = _request(client, upstream, endpoint, body, client_request_id=client_request_id)
    with map_httpx_errors(upstream):
        response = await client.send(request)
    if response.status_code >= 300:
        raise status_error(upstream, response, response.content, mask)
    return mask.key(response.content)
