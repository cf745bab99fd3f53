"""The one error tree of Bodhi, rendered in the OpenAI error shape.

Every error a client can see is one of these (``tests/test_error_tree.py`` checks that each class is drawn here or
in the API-only branch of ``bodhi_api/http_errors.py``); where a class lives outside this module, its module is
named in brackets.

    BodhiError                      500 api_error
    ├── InvalidRequest              400 invalid_request_error
    ├── ModelNotFound               404 invalid_request_error / model_not_found
    ├── ServiceUnavailable          503 api_error / service_unavailable
    │   ├── NoWorkerAvailable       503 no_worker_available: no live worker took the job [bodhi_api.dispatch]
    │   ├── ClientTooSlow           503 client_too_slow: the client read too slowly [bodhi_api.stream_hub]
    │   ├── DependencyUnavailable   503 with Retry-After: Postgres or Redis unreachable [bodhi_api.error_handlers]
    │   ├── EventsUndeliverable     503 events_undeliverable: a job's events cannot be published
    │   │                           [bodhi_shared.event_publisher]
    │   ├── WorkerKeyMissing        503 worker_key_missing: a worker key file is gone [bodhi_shared.worker_keys]
    │   ├── RouterCoolingDown       503 router_cooling_down, with Retry-After: every target of a router is cooling
    │   │                           down [bodhi_api.model_routers.routed_dispatch]
    │   └── RouterUnavailable       503 router_unavailable: none of a router's targets is served any more
    │                               [bodhi_api.model_routers.routed_dispatch]
    ├── SecretUnreadable            500 secret_unreadable: a stored key does not open [bodhi_shared.crypto]
    ├── RelayedError                an error a worker reported, relayed with its status, body and headers
    └── UpstreamError               502 upstream failures, relayed by remote workers (upstream_redirect: a 30x;
        │                           upstream_malformed_stream: a stream that is not OpenAI's event stream)
        ├── WorkerLost              502 worker_lost: the worker serving a stream stopped [bodhi_api.event_reader]
        ├── UpstreamHTTPError       the provider answered with an error status (status, masked body and
        │                           Retry-After / x-ratelimit-* headers kept)
        ├── ProviderAuthenticationFailed
        │                           502 upstream_error / provider_authentication_failed: the provider refused
        │                           the stored key (401/403); never the client's 401
        ├── UpstreamAddressRefused  502 upstream_address_refused: the provider's host or address is not allowed
        ├── UpstreamUnreachable     502 connection refused, DNS failure
        ├── UpstreamTimeout         504 connect, first byte or idle timeout
        └── ProviderCheckFailed     502 (504 on a timeout) checking an API model's provider failed; code says why:
                                    invalid_api_key, network_error, connection_failed, model_not_found,
                                    rate_limit_exceeded

Services raise these; only the API's exception handlers turn them into responses, and only workers turn them
into error events (``contract.StreamEvent.error``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bodhi_shared.upstream_addresses import PRIVATE_HINT


class BodhiError(Exception):
    """Base of every error a client may see."""

    status_code: int = 500
    error_type: str = "api_error"
    code: str | None = None
    headers: dict[str, str] = {}

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, Any]:
        """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}

    def to_json(self) -> bytes:
        return json.dumps(self.to_body()).encode()


class InvalidRequest(BodhiError):
    """The caller sent something malformed or incomplete."""

    status_code = 400
    error_type = "invalid_request_error"


class ModelNotFound(BodhiError):
    """No local alias or API model serves the requested name."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class ServiceUnavailable(BodhiError):
    """Nothing could take the request now (no worker picked it up, a dependency is down)."""

    status_code = 503
    code = "service_unavailable"


class RelayedError(BodhiError):
    """An error a worker published (an ERROR event); its status, OpenAI body and headers are passed on."""

    def __init__(self, status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = relayable_error_headers(headers or {})
        super().__init__(f"worker reported HTTP {status_code}")

    def to_json(self) -> bytes:
        return self.body


class UpstreamError(BodhiError):
    """A provider call failed."""

    status_code = 502
    code = "upstream_error"


class UpstreamHTTPError(UpstreamError):
    """The provider answered with an error status; its status and (already masked) body are relayed, and so are
    the headers that tell a client when to retry (``relayable_error_headers``)."""

    def __init__(self, status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = relayable_error_headers(headers or {})
        super().__init__(f"upstream answered HTTP {status_code}")

    def to_json(self) -> bytes:
        return relayable_error_body(self.status_code, self.body)


class ProviderAuthenticationFailed(UpstreamError):
    """The provider refused the API model's stored key (its 401 or 403).

    Not relayed as a 401: the OpenAI SDK raises that as ``AuthenticationError``, exactly as for a bad Bodhi token,
    and the caller can do nothing about a stored key but tell an admin.
    """

    error_type = "upstream_error"
    code = "provider_authentication_failed"

    def __init__(self, *, api_model_name: str, upstream_status: int) -> None:
        named = f"API model `{api_model_name}`" if api_model_name else "this API model"
        super().__init__(
            f"The provider refused the API key of {named} (HTTP {upstream_status}). "
            "An admin must update the API model's key."
        )
        self.upstream_status = upstream_status


class UpstreamAddressRefused(UpstreamError):
    """The provider's host, or an address it resolves to, is one Bodhi does not connect to (``upstream_addresses``).

    ``private`` marks a refusal that ``BODHI_ALLOW_PRIVATE_UPSTREAMS`` would lift; the message then says so.
    """

    code = "upstream_address_refused"

    def __init__(self, *, host: str, reason: str, private: bool = False) -> None:
        hint = f" {PRIVATE_HINT}" if private else ""
        super().__init__(f"Bodhi does not connect to the provider at {host}: {reason}.{hint}")
        self.host = host
        self.reason = reason


class UpstreamUnreachable(UpstreamError):
    """The provider could not be reached (connection refused, DNS failure)."""

    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    """The provider did not answer in time."""

    status_code = 504
    code = "upstream_timeout"


class ProviderCheckFailed(UpstreamError):
    """Listing a provider's models or sending it a test request failed.

    ``message`` opens with the phrase the product shows ("Invalid API key", "Network error", "Connection failed",
    "Model not found", "Rate limit exceeded"), ``code`` is the matching stable code, and ``upstream_status`` is
    the provider's HTTP status when it answered at all. The message never holds the API key.
    """

    def __init__(self, message: str, *, code: str, status_code: int = 502, upstream_status: int | None = None) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code
        self.upstream_status = upstream_status


# What a client may learn from a provider's error response besides its body: when to retry, and its limits.
RELAYED_HEADERS = frozenset({"retry-after"})
RELAYED_HEADER_PREFIXES = ("x-ratelimit-",)


def relayable_error_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The provider's ``Retry-After`` and ``x-ratelimit-*`` headers, nothing else (no cookies, no ids)."""
    return {
        name.lower(): value
        for name, value in headers.items()
        if isinstance(name, str)  # headers may come from an event's msgpack meta: trust no shape
        and isinstance(value, str)
        and (name.lower() in RELAYED_HEADERS or name.lower().startswith(RELAYED_HEADER_PREFIXES))
    }


def relayable_error_body(status_code: int, body: bytes) -> bytes:
    """Keep a provider's error body when it already has the OpenAI shape, else wrap it in that shape."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return body
    text = body.decode("utf-8", "replace").strip()[:500] or "no body"
    wrapped = UpstreamError(f"upstream answered HTTP {status_code}: {text}")
    return wrapped.to_json()
