"""Pure ASGI middleware: every request gets an id of the server's own; the client's ``X-Request-Id`` is kept apart.

Only the server's id (uuid4 hex) routes anything: the job id, the stream's channel routing, cancel messages, the
associated data of a key typed into a form. A client-chosen id must not: two clients sending the same one would
get each other's streams, and either could cancel the other's job by reusing its id and hanging up. The client's
id (when acceptable) is echoed back as ``X-Request-Id``, logged and passed on to the provider for tracing; without
one, ``X-Request-Id`` is the server's id. ``X-Bodhi-Request-Id`` always names the server's id, the one in the logs.
"""

import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bodhi_shared.logs import bind_request_id

HEADER = b"x-request-id"
SERVER_HEADER = b"x-bodhi-request-id"
_ACCEPTABLE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")

log = logging.getLogger(__name__)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == HEADER), None)
        client_request_id = given.decode() if given and _ACCEPTABLE.match(given) else None
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"], state["client_request_id"] = request_id, client_request_id
        # Every line logged for this request carries its id (``bodhi_shared.logs``). Not reset on the way out: the
        # request's task ends with it, and the lines logged after this middleware returns (the handler of an
        # unexpected error, uvicorn's own) belong to the request too.
        bind_request_id(request_id)
        if client_request_id is not None:  # so an operator handed the client's id finds the server's in the logs
            log.info(
                "request %s: %s %s has X-Request-Id %s", request_id, scope["method"], scope["path"], client_request_id
            )
        headers = [(HEADER, (client_request_id or request_id).encode()), (SERVER_HEADER, request_id.encode())]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_id)
