"""The only place errors become HTTP responses: in the OpenAI error shape, except on the routes of another API's
format (``ERROR_SHAPES``: Anthropic's on ``/v1/messages``)."""

import json
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match, Mount

from bodhi_api.http_errors import NotFound
from bodhi_shared.api_formats.anthropic_output import error_body as anthropic_error_body
from bodhi_shared.api_formats.sse import to_json
from bodhi_shared.errors import BodhiError, InvalidRequest, ServiceUnavailable
from bodhi_shared.translated_jobs import openai_error_of

log = logging.getLogger(__name__)

JSON = "application/json"


def anthropic_error(status: int, body: bytes) -> dict[str, Any]:
    """An error body in Anthropic's shape (``{"type": "error", "error": {"type", "message"}}``): kept if it is one
    already (a provider's own, or a worker's), else made from the OpenAI error it holds."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("type") == "error" and isinstance(parsed.get("error"), dict):
        return parsed
    return anthropic_error_body(status, openai_error_of(body))


# Routes whose errors are in another API's shape: every error at that path, from its authentication to a worker's.
ERROR_SHAPES: dict[str, Callable[[int, bytes], bytes]] = {
    "/v1/messages": lambda status, body: to_json(anthropic_error(status, body)),
}


def error_response(exc: BodhiError, *, path: str = "") -> Response:
    """``exc`` as a response, in the error shape of the route at ``path``."""
    body = exc.to_json()
    if (shape := ERROR_SHAPES.get(path)) is not None:
        body = shape(exc.status_code, body)
    return Response(body, status_code=exc.status_code, media_type=JSON, headers=exc.headers)


async def handle_bodhi_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodhiError)
    return error_response(exc, path=request.url.path)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    if first["loc"] == ("body",) and not _sent_as_json(request):
        # curl -d sends a form content type: FastAPI then never parses the JSON, and pydantic's complaint
        # ("Input should be a valid dictionary") does not say what to change.
        return error_response(
            InvalidRequest(
                "Send the body as JSON with the header `Content-Type: application/json` "
                f"(this request said `{request.headers.get('content-type', '')[:80]}`)."
            ),
            path=request.url.path,
        )
    # A body that is not JSON has a character offset as its location, which names no field.
    loc = () if first.get("type") == "json_invalid" else first["loc"]
    field = ".".join(str(p) for p in loc if p != "body") or None
    where = f" `{field}`" if field else ""
    # pydantic prefixes the message of a validator's ValueError; ours are sentences of their own.
    message = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
    return error_response(InvalidRequest(f"Invalid request{where}: {message}.", param=field), path=request.url.path)


def _sent_as_json(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    if not content_type:
        return True  # FastAPI reads a body without a content type as JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or media.endswith("+json")


class RouteNotFound(NotFound):
    """No route at the path asked for (not a missing resource behind a route)."""


class MethodNotAllowed(BodhiError):
    status_code = 405
    error_type = "invalid_request_error"
    code = "method_not_allowed"


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    target, path = f"{request.method} {request.url.path}", request.url.path
    if exc.status_code == 404:
        return error_response(RouteNotFound(f"Unknown route {target}. The API reference is at /docs."), path=path)
    if exc.status_code == 405:
        error: BodhiError = MethodNotAllowed(f"Method not allowed: {target}.")
        error.headers = {"Allow": _allowed_methods(request) or (exc.headers or {}).get("Allow", "")}
        return error_response(error, path=path)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's "There was an error parsing the body", raised from what went wrong.
        return error_response(InvalidRequest(_unparsable_body(exc.__cause__)), path=path)
    error = BodhiError(str(exc.detail))
    error.status_code = exc.status_code
    error.headers = dict(exc.headers or {})
    if 400 <= exc.status_code < 500:
        error.error_type = "invalid_request_error"
    return error_response(error, path=path)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route answers at this path: Starlette's own Allow names only the first route's.

    Asks each route whether it would take the request with another method (``matches`` works the same on a route
    and on an included router); mounts are left out, since they take every method and refuse inside."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


def _unparsable_body(cause: BaseException) -> str:
    if isinstance(cause, RecursionError):
        return "The request body is nested too deeply to parse."
    if isinstance(cause, UnicodeDecodeError):
        return "The request body is not valid UTF-8. Send JSON in UTF-8."
    return "The request body could not be read as JSON. Send a JSON object."


UNEXPECTED_MESSAGE = "The server had an internal error. Retry, or check the server logs."
RETRY_AFTER_OUTAGE_S = 2

# What a lost connection to Postgres or Redis raises on its way up (the drivers' own errors, and the socket's).
_POSTGRES_DOWN = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError)


class DependencyUnavailable(ServiceUnavailable):
    """Postgres or Redis cannot be reached: the request may succeed once it is back."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(RETRY_AFTER_OUTAGE_S)}


def as_bodhi_error(exc: BaseException) -> BodhiError:
    """What a client is told about ``exc``: itself if it is ours, 503 for an unreachable Postgres or Redis,
    else the internal error (logged by the caller with its traceback)."""
    if isinstance(exc, BodhiError):
        return exc
    if isinstance(exc, _REDIS_DOWN):
        return DependencyUnavailable("The gateway cannot reach Redis right now; retry shortly.")
    if isinstance(exc, _POSTGRES_DOWN):
        return DependencyUnavailable("The gateway cannot reach its database right now; retry shortly.")
    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):  # a socket to Postgres or Redis, most likely
        return DependencyUnavailable("The gateway cannot reach Postgres or Redis right now; retry shortly.")
    return BodhiError(UNEXPECTED_MESSAGE)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    error = as_bodhi_error(exc)
    if isinstance(error, DependencyUnavailable):
        log.warning("%s %s: %s (%s)", request.method, request.url.path, error.message, type(exc).__name__)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(error, path=request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BodhiError, handle_bodhi_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    # Registered by class, not only through the catch-all below: Starlette re-raises what reaches the catch-all
    # after answering, and the server then drops the connection; an unreachable dependency is no such crash.
    for unreachable in (*_REDIS_DOWN, *_POSTGRES_DOWN, OSError):
        app.add_exception_handler(unreachable, handle_unexpected)
    app.add_exception_handler(Exception, handle_unexpected)
