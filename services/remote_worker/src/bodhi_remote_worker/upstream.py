"""Calls to OpenAI-compatible providers with httpx, their failures mapped onto Bodhi's error tree."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx

from bodhi_shared.errors import UpstreamError, UpstreamHTTPError, UpstreamTimeout, UpstreamUnreachable


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider endpoint with its key opened: exists only inside a remote worker, never on the wire."""

    base_url: str
    api_key: str = field(repr=False)


SSE_DATA = "data:"
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


def _request(client: httpx.AsyncClient, upstream: Provider, endpoint: str, body: bytes) -> httpx.Request:
    headers = {"Content-Type": "application/json", **auth_headers(upstream.api_key)}
    return client.build_request("POST", f"{upstream.base_url}/{endpoint}", content=body, headers=headers)


async def stream_sse(
    client: httpx.AsyncClient, upstream: Provider, body: bytes, *, endpoint: str = "chat/completions"
) -> AsyncIterator[bytes]:
    """Yield the ``data:`` payload of each SSE event the provider streams, up to ``[DONE]``."""
    with map_httpx_errors(upstream):
        response = await client.send(_request(client, upstream, endpoint, body), stream=True)
        try:
            if response.status_code >= 400:
                raise UpstreamHTTPError(response.status_code, await response.aread())
            done = False
            async for line in response.aiter_lines():
                if done or not line.startswith(SSE_DATA):
                    continue  # comments (": keep-alive"), event names, blank separators
                payload = line[len(SSE_DATA) :].strip()
                if payload == SSE_DONE:
                    # Read on to the end of the body: a fully read response returns its connection to the pool,
                    # one closed early takes the connection down with it.
                    done = True
                    continue
                yield payload.encode()
        finally:
            await response.aclose()


async def forward(
    client: httpx.AsyncClient, upstream: Provider, body: bytes, *, endpoint: str = "chat/completions"
) -> bytes:
    """Send a non-streamed request; return the provider's body unchanged."""
    with map_httpx_errors(upstream):
        response = await client.send(_request(client, upstream, endpoint, body))
    if response.status_code >= 400:
        raise UpstreamHTTPError(response.status_code, response.content)
    return response.content
