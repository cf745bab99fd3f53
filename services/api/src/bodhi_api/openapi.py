"""``/openapi.json`` as the API really answers: FastAPI's document, corrected where Bodhi differs from FastAPI.

FastAPI declares a 422 with its own validation body on every route with input, and nothing else. Bodhi answers
invalid input with 400 in the OpenAI error shape (``error_handlers.handle_validation_error``; Anthropic's on
``/v1/messages``, ``AnthropicErrorBody``), authenticates
callers (401, 403), looks things up (404), refuses clashes (409), large bodies (413), floods (429) and works
without Postgres or Redis only long enough to say so (503). Those answers are derived from each route's shape
(its body, parameters, dependencies and method), plus ``_EXTRA_STATUSES`` for what the shape cannot show.
``tests/bodhi_api/test_schemathesis.py`` holds every route to this document.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from bodhi_api.auth.principal import API_KEY_PATHS, authenticate
from bodhi_api.auth.sessions import COOKIE_NAME
from bodhi_api.deps import get_resources
from bodhi_api.routes.usage import metrics_reader
from bodhi_shared.clean_text import LINE_PATTERN
from bodhi_shared.openai_wire import MAX_MODEL_ID

JSON = "application/json"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong and what to do about it.")
    type: str = Field(description="`invalid_request_error`, `authentication_error`, `permission_error`, ...")
    param: str | None = Field(description="The request field at fault, if one is.")
    code: str | None = Field(description="A stable code (`model_not_found`, `request_too_large`, ...).")


class ErrorBody(BaseModel):
    """Every error Bodhi answers, in the OpenAI error shape (but on ``/v1/messages``: ``AnthropicErrorBody``)."""

    error: ErrorDetail


class AnthropicErrorDetail(BaseModel):
    type: str = Field(description="`invalid_request_error`, `authentication_error`, `not_found_error`, ...")
    message: str = Field(description="What went wrong and what to do about it.")


class AnthropicErrorBody(BaseModel):
    """The errors of ``/v1/messages``, in Anthropic's error shape."""

    type: str = Field(description="Always `error`.")
    error: AnthropicErrorDetail


_DESCRIPTIONS = {
    "400": "Invalid request: a field, the JSON or the content type (the message names what to change).",
    "401": "Missing, invalid, inactive or deleted credentials.",
    "403": "The caller's role does not allow this, or a cookie-carrying request came from another site.",
    "404": "No such resource (or model).",
    "409": "Conflicts with what exists (a taken name, an id already served, setup already done).",
    "413": "The request body is larger than BODHI_MAX_BODY_BYTES.",
    "429": "Too many requests (failed logins, a full queue, a rate limit or a budget reached); see Retry-After.",
    "502": "The provider failed or could not be reached.",
    "503": "Postgres, Redis or a worker is unavailable right now; see Retry-After when given.",
    "504": "The provider did not answer in time.",
}

# What a route can answer that its shape does not show, by (method, path as in the document).
_EXTRA_STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/bodhi/v1/setup"): (409,),
    ("POST", "/bodhi/v1/auth/login"): (401, 429),
    ("POST", "/bodhi/v1/users"): (409,),
    ("POST", "/bodhi/v1/models/api"): (409,),
    ("PUT", "/bodhi/v1/models/api/{api_model_id}"): (409,),
    ("PATCH", "/bodhi/v1/models/api/{api_model_id}"): (409,),
    ("POST", "/bodhi/v1/models/api/fetch-models"): (404, 429, 502, 504),
    ("POST", "/bodhi/v1/models/api/test"): (404, 429, 502, 504),
    ("POST", "/bodhi/v1/models/alias"): (409,),
    ("POST", "/v1/chat/completions"): (404, 429, 502, 504),
    ("POST", "/v1/completions"): (404, 429, 502, 504),
    ("POST", "/v1/embeddings"): (404, 429, 502, 504),
    ("POST", "/v1/responses"): (404, 429, 502, 504),  # 404: the model, or a previous_response_id
    ("POST", "/v1/messages"): (404, 429, 502, 504),
}
# Streamed as server-sent events when the body asks for it.
_STREAMED = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages")
# Routes whose errors are in Anthropic's shape (``error_handlers.ERROR_SHAPES``).
_ANTHROPIC_SHAPED = frozenset({"/v1/messages"})
_OBJECTS = {"type": "array", "items": {"type": "object"}}

_MODEL = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_MODEL_ID,
    "pattern": LINE_PATTERN,
    "description": "An id listed by GET /v1/models.",
}
# The inference bodies are read by hand (``openai_wire``), so FastAPI cannot describe them; only what Bodhi reads
# is required, everything else goes to the provider as sent.
_INFERENCE_BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": _MODEL,
            "messages": {"type": "array", "items": {"type": "object"}},
            "stream": {"type": ["boolean", "null"], "description": "Answer as server-sent events."},
            "tools": {"type": ["array", "null"], "items": {"type": "object"}},
        },
        "additionalProperties": True,
        "description": "An OpenAI chat completion request; fields other than `model` and `stream` pass through.",
    },
    "/v1/completions": {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": _MODEL,
            "prompt": {"anyOf": [{"type": "string"}, {"type": "array"}]},
            "stream": {"type": ["boolean", "null"], "description": "Answer as server-sent events."},
        },
        "additionalProperties": True,
        "description": "An OpenAI (legacy) text completion request; fields other than `model` and `stream` pass "
        "through.",
    },
    "/v1/embeddings": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": _MODEL,
            "input": {"anyOf": [{"type": "string"}, {"type": "array"}]},
        },
        "additionalProperties": True,
        "description": "An OpenAI embeddings request; fields other than `model` pass through.",
    },
    "/v1/responses": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": _MODEL,
            "input": {"anyOf": [{"type": "string"}, _OBJECTS]},
            "stream": {"type": ["boolean", "null"], "description": "Answer as server-sent events."},
            "tools": {"type": ["array", "null"], "items": {"type": "object"}},
            "previous_response_id": {
                "type": ["string", "null"],
                "minLength": 1,
                "description": "Continue after a stored response of yours: its input and output come first.",
            },
            "store": {"type": ["boolean", "null"], "description": "Keep the response (default true)."},
        },
        "additionalProperties": True,
        "description": "An OpenAI Responses API request, answered by any model (translated to a chat completion "
        "unless its provider speaks the Responses API).",
    },
    "/v1/messages": {
        "type": "object",
        "required": ["model", "messages", "max_tokens"],
        "properties": {
            "model": _MODEL,
            "messages": _OBJECTS,
            "max_tokens": {"type": "integer", "minimum": 1},
            "stream": {"type": ["boolean", "null"], "description": "Answer as server-sent events."},
            "tools": {"type": ["array", "null"], "items": {"type": "object"}},
        },
        "additionalProperties": True,
        "description": "An Anthropic Messages request, answered by any model (translated to a chat completion "
        "unless its provider is an Anthropic one). Errors are in Anthropic's shape.",
    },
}
# A provider's error is relayed with its status and body (the OpenAI shape, possibly with fields of its own).
_RELAYED_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "object"}}}
_RELAYED_ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {"type": {"const": "error"}, "error": {"type": "object"}},
}


def install_openapi(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Serve ``bodhi_openapi`` at ``app.openapi_url``, built once, on its first request.

    ``routers`` are those the app includes (without a prefix): recent FastAPI versions no longer list their routes
    flat in ``app.routes``, and the corrections need each route's dependencies."""
    routes = [route for router in routers for route in router.routes if isinstance(route, APIRoute)]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = bodhi_openapi(app, routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to replace the document


def bodhi_openapi(app: FastAPI, routes: Sequence[APIRoute]) -> dict[str, Any]:
    """The document of ``app``, whose API routes are ``routes``."""
    document = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs"))
    schemas["ErrorBody"] = error_schema
    anthropic_schema = AnthropicErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(anthropic_schema.pop("$defs"))
    schemas["AnthropicErrorBody"] = anthropic_schema
    document["components"]["securitySchemes"] = {
        "bearerToken": {"type": "http", "scheme": "bearer", "description": "An API token (POST /bodhi/v1/tokens)."},
        "sessionCookie": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME, "description": "A browser session."},
        "apiKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
            "description": "An API token in Anthropic's header, on the routes under /v1/.",
        },
    }
    for route in routes:
        if not route.include_in_schema:
            continue
        for method in sorted(route.methods or ()):
            operation = document["paths"][route.path_format][method.lower()]
            _correct(operation, route=route, method=method)
    return document


def _correct(operation: dict[str, Any], *, route: APIRoute, method: str) -> None:
    path = route.path_format
    if path in _INFERENCE_BODIES:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": _INFERENCE_BODIES[path]}}}
        operation["responses"]["200"]["content"] = {JSON: {"schema": {"type": "object"}}}
        if path in _STREAMED:
            operation["responses"]["200"]["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    if path == "/v1/responses/{response_id}" and method == "GET":
        operation["responses"]["200"]["content"] = {JSON: {"schema": {"type": "object"}}}  # a stored Response
    if path == "/metrics":
        operation["responses"]["200"] = {
            "description": "Prometheus metrics, in the text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    if path == "/health":
        operation["responses"]["503"] = {
            "description": "Not ready: the same report, naming what is down.",
            "content": operation["responses"]["200"].get("content", {JSON: {"schema": {"type": "object"}}}),
        }
    operation["responses"].pop("422", None)
    # `/metrics` authenticates through `metrics_reader` (unless BODHI_METRICS_PUBLIC): documented as by default.
    authenticated = _depends_on(route.dependant, authenticate) or _depends_on(route.dependant, metrics_reader)
    if authenticated:
        operation["security"] = [{"bearerToken": []}, {"sessionCookie": []}]
        if path.startswith(API_KEY_PATHS):
            operation["security"].append({"apiKeyHeader": []})
    anthropic = path in _ANTHROPIC_SHAPED
    for status in _statuses(operation, route=route, method=method, authenticated=authenticated):
        operation["responses"].setdefault(
            str(status),
            {"description": _DESCRIPTIONS[str(status)], "content": {JSON: {"schema": _error_ref(anthropic=anthropic)}}},
        )
    if path in _INFERENCE_BODIES:
        operation["responses"]["default"] = {
            "description": "A provider's error, relayed with its status and body.",
            "content": {JSON: {"schema": _RELAYED_ANTHROPIC_ERROR if anthropic else _RELAYED_ERROR}},
        }


def _statuses(operation: dict[str, Any], *, route: APIRoute, method: str, authenticated: bool) -> list[int]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses: set[int] = set(_EXTRA_STATUSES.get((method, route.path_format), ()))
    if has_body or any(p["in"] != "path" for p in parameters):
        statuses.add(400)
    if has_body:
        statuses.add(413)
    if authenticated:
        statuses |= {401, 403}
    elif method in UNSAFE_METHODS:
        statuses.add(403)  # the cross-site check of a request carrying a session cookie
    if any(p["in"] == "path" for p in parameters):
        statuses.add(404)
    if _depends_on(route.dependant, get_resources) and route.path_format != "/health":
        statuses.add(503)  # Postgres or Redis unreachable (``error_handlers.as_bodhi_error``)
    return sorted(statuses)


def _error_ref(*, anthropic: bool = False) -> dict[str, str]:
    return {"$ref": "#/components/schemas/AnthropicErrorBody" if anthropic else "#/components/schemas/ErrorBody"}


def _depends_on(dependant: Dependant, call: object) -> bool:
    return any(dep.call is call or _depends_on(dep, call) for dep in dependant.dependencies)
