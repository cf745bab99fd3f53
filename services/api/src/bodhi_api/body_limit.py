"""Pure ASGI middleware: request bodies over ``BODHI_MAX_BODY_BYTES`` get 413 before they are read whole.

A body announced as too large (``Content-Length``) is refused before the app runs or a byte of it is read; one that
arrives without a length (chunked) or longer than announced is counted as the app reads it, and refused when the
count passes the limit. Either way the API holds at most one chunk past the limit, never the body.

Refusing mid-body: the middleware answers 413 itself at that moment (unless the app had already started its
response) and raises ``BodyTooLarge`` into the app's ``receive``. The app may handle that as it likes (FastAPI
turns any error reading a body into a 400 of its own); whatever it sends afterwards is dropped.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bodhi_api.error_handlers import error_response
from bodhi_shared.errors import BodhiError

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


class RequestTooLarge(BodhiError):
    """The request body is larger than the deployment accepts (``BODHI_MAX_BODY_BYTES``)."""

    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"

    def __init__(self, *, limit: int) -> None:
        super().__init__(
            f"The request body is larger than this gateway accepts ({_size(limit)}, {limit} bytes; "
            "BODHI_MAX_BODY_BYTES). Send a smaller request."
        )
        self.limit = limit


class BodyTooLarge(Exception):
    """Raised into the app's ``receive`` once the body passed the limit (the client has its 413 unless the app had
    started its response); a signal inside the app, never shown to a client."""


def _size(limit: int) -> str:
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        announced = _content_length(scope)
        if announced is not None and announced > limit:
            await error_response(RequestTooLarge(limit=limit), path=scope["path"])(scope, receive, send)
            return
        await _LimitedExchange(self.app, limit=limit, send=send).run(scope, receive)


class _LimitedExchange:
    """One request: counts its body as the app reads it; answers 413 the moment the count passes the limit."""

    def __init__(self, app: ASGIApp, *, limit: int, send: Send) -> None:
        self.app = app
        self.limit = limit
        self.send = send
        self.received = 0
        self.response_started = False
        self.refused = False

    async def run(self, scope: Scope, receive: Receive) -> None:
        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    await self._refuse(scope, receive)
            return message

        try:
            await self.app(scope, counting_receive, self._send_unless_refused)
        except BodyTooLarge:
            if not self.refused:
                raise

    async def _refuse(self, scope: Scope, receive: Receive) -> None:
        if not self.response_started and not self.refused:
            self.refused = True
            await error_response(RequestTooLarge(limit=self.limit), path=scope["path"])(scope, receive, self.send)
        raise BodyTooLarge  # with a response under way, the app (or the server) ends it

    async def _send_unless_refused(self, message: Message) -> None:
        if self.refused:
            return  # the client has its 413; what the app makes of the interrupted body is not sent
        if message["type"] == "http.response.start":
            self.response_started = True
        await self.send(message)
