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


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(BodhiError(UNEXPECTED_MESSAGE))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BodhiError, handle_bodhi_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
