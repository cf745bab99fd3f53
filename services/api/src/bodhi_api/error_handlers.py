"""The only place errors become HTTP responses, always in the OpenAI error shape."""

import logging

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from bodhi_shared.errors import BodhiError, InvalidRequest, ServiceUnavailable

log = logging.getLogger(__name__)

JSON = "application/json"


def error_response(exc: BodhiError) -> Response:
    return Response(exc.to_json(), status_code=exc.status_code, media_type=JSON, headers=exc.headers)


async def handle_bodhi_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodhiError)
    return error_response(exc)


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
            )
        )
    # A body that is not JSON has a character offset as its location, which names no field.
    loc = () if first.get("type") == "json_invalid" else first["loc"]
    field = ".".join(str(p) for p in loc if p != "body") or None
    where = f" `{field}`" if field else ""
    # pydantic prefixes the message of a validator's ValueError; ours are sentences of their own.
    message = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
    return error_response(InvalidRequest(f"Invalid request{where}: {message}.", param=field))


def _sent_as_json(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    if not content_type:
        return True  # FastAPI reads a body without a content type as JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or media.endswith("+json")


class RouteNotFound(BodhiError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(BodhiError):
    status_code = 405
    error_type = "invalid_request_error"
    code = "method_not_allowed"


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    target = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return error_response(RouteNotFound(f"Unknown route {target}. The API reference is at /docs."))
    if exc.status_code == 405:
        return error_response(MethodNotAllowed(f"Method not allowed: {target}."))
    error = BodhiError(str(exc.detail))
    error.status_code = exc.status_code
    return error_response(error)


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
    if isinstance(exc, _POSTGRES_DOWN) or (isinstance(exc, OSError) and not isinstance(exc, TimeoutError)):
        return DependencyUnavailable("The gateway cannot reach its database right now; retry shortly.")
    return BodhiError(UNEXPECTED_MESSAGE)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    error = as_bodhi_error(exc)
    if isinstance(error, DependencyUnavailable):
        log.warning("%s %s: %s (%s)", request.method, request.url.path, error.message, type(exc).__name__)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(error)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BodhiError, handle_bodhi_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    # Registered by class, not only through the catch-all below: Starlette re-raises what reaches the catch-all
    # after answering, and the server then drops the connection; an unreachable dependency is no such crash.
    for unreachable in (*_REDIS_DOWN, *_POSTGRES_DOWN, OSError):
        app.add_exception_handler(unreachable, handle_unexpected)
    app.add_exception_handler(Exception, handle_unexpected)
