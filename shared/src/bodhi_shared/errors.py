"""The one error tree of Bodhi, rendered in the OpenAI error shape.

    BodhiError                      500 api_error
    ├── InvalidRequest              400 invalid_request_error
    ├── ModelNotFound               404 invalid_request_error / model_not_found
    ├── ServiceUnavailable          503 api_error / service_unavailable
    ├── RelayedError                an error a worker reported, relayed with its status and body as sent
    └── UpstreamError               upstream failures, relayed by remote workers
        ├── UpstreamHTTPError       the provider answered with an error status (status and body kept)
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
from typing import Any


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
    """An error a worker published (an ERROR event); its status and OpenAI body are passed on unchanged."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(f"worker reported HTTP {status_code}")

    def to_json(self) -> bytes:
        return self.body


class UpstreamError(BodhiError):
    """A provider call failed."""

    status_code = 502
    code = "upstream_error"


class UpstreamHTTPError(UpstreamError):
    """The provider answered with an error status; its status and body are relayed unchanged."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(f"upstream answered HTTP {status_code}")

    def to_json(self) -> bytes:
        return relayable_error_body(self.status_code, self.body)


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
