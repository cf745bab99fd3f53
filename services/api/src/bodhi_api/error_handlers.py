"""The only place errors become HTTP responses, always in the OpenAI error shape."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from bodhi_shared.errors import BodhiError, InvalidRequest

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
    field = ".".join(str(p) for p in first["loc"] if p != "body") or None
    where = f" `{field}`" if field else ""
    return error_response(InvalidRequest(f"Invalid request{where}: {first['msg']}.", param=field))


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
        return error_response(RouteNotFound(f"Unknown route {target}. See the API reference for valid routes."))
    if exc.status_code == 405:
        return error_response(MethodNotAllowed(f"Method not allowed: {target}."))
    error = BodhiError(str(exc.detail))
    error.status_code = exc.status_code
    return error_response(error)


UNEXPECTED_MESSAGE = "The server had an internal error. Retry, or check the server logs."


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(BodhiError(UNEXPECTED_MESSAGE))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BodhiError, handle_bodhi_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
