"""Runs an API replica under uvicorn, with a bounded drain that ends the requests still open in-band.

On SIGTERM uvicorn stops accepting connections and waits for the open ones to finish. Left to itself, once
``timeout_graceful_shutdown`` has passed, it cancels the requests still running and closes their connections: a
stream is cut mid-body (the client reads "incomplete chunked read"), a request still waiting for a worker gets no
answer at all. ``DrainCutoff`` ends them first, after ``BODHI_DRAIN_TIMEOUT``: a started stream with an in-band
error and ``data: [DONE]`` (on ``/v1/responses`` and ``/v1/messages``, the format's own: ``stream_wire``), a request
not answered yet with a 503, each a complete response; uvicorn's own timeout, a little later, remains the backstop.
A second SIGTERM/SIGINT ends them at once (a third SIGINT forces the exit).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bodhi_api.error_handlers import error_response
from bodhi_api.stream_wire import wire_of
from bodhi_shared.errors import BodhiError, ServiceUnavailable

log = logging.getLogger(__name__)

BACKSTOP_S = 2.0  # after the cutoff, before uvicorn cancels what is left (its responses take milliseconds)


class _TrackedResponse:
    """What one request has sent so far, to complete it with an error."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = self.sse = self.ended = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            headers = message.get("headers", ())
            self.sse = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers)
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.ended = True
        await self._send(message)

    async def end_with(self, error: BodhiError, scope: Scope) -> None:
        """In the route's format: its error shape (``error_handlers.ERROR_SHAPES``), its stream's end (the wire a
        request of another format left in the scope's state; ``data: {"error": ...}``, ``data: [DONE]`` otherwise)."""
        if not self.started:
            body = error_response(error, path=scope.get("path", "")).body
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await self._send({"type": "http.response.start", "status": error.status_code, "headers": headers})
            await self._send({"type": "http.response.body", "body": body})
        elif self.sse and not self.ended:
            closing = wire_of(scope.get("state")).error(error.status_code, error.to_json())
            await self._send({"type": "http.response.body", "body": closing})
        # A plain body begun and not finished cannot be completed: uvicorn closes the connection.


class DrainCutoff:
    """Pure ASGI middleware, outermost: ``cut()`` ends every request still running with a complete error response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._running: set[asyncio.Task[Any]] = set()
        self.cutting = False

    def cut(self) -> None:
        if self.cutting:
            return
        self.cutting = True
        log.warning("ending %d request(s) still running at the end of the drain", len(self._running))
        for task in self._running:
            task.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        response = _TrackedResponse(send)
        self._running.add(task)
        try:
            await self.app(scope, receive, response.send)
        except asyncio.CancelledError:
            if not self.cutting:
                raise
            task.uncancel()  # the app has unwound (the relay told its worker to stop); the response is ours to end
            stopped = ServiceUnavailable(
                "This gateway replica is shutting down and stopped this request; retry it.", code="replica_stopping"
            )
            await response.end_with(stopped, scope)
        finally:
            self._running.discard(task)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose graceful shutdown ends what is left with ``DrainCutoff`` after ``drain_timeout``."""

    def __init__(self, config: uvicorn.Config, *, cutoff: DrainCutoff, drain_timeout: float) -> None:
        super().__init__(config)
        self._cutoff = cutoff
        self._drain_timeout = drain_timeout
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        timer = asyncio.get_running_loop().call_later(self._drain_timeout, self._cutoff.cut)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and not self._cutoff.cutting and self._loop is not None:
            log.warning("signal %d again: ending the open requests now", sig)
            self._loop.call_soon_threadsafe(self._cutoff.cut)  # from a signal handler: wake the loop
            return
        super().handle_exit(sig, frame)


def serve_api(app: ASGIApp, *, drain_timeout: float, **config: Any) -> bool:
    """Serve ``app`` until SIGTERM/SIGINT, then drain for up to ``drain_timeout`` seconds; False if it never
    started (the port taken, the lifespan failed).

    uvicorn's loggers are left unconfigured (``log_config=None``): they propagate to the root handler of
    ``bodhi_shared.logs``, so its lines have the process's format (``BODHI_LOG_FORMAT``) and request ids.
    """
    config.setdefault("log_config", None)
    cutoff = DrainCutoff(app)
    timeout = math.ceil(drain_timeout + BACKSTOP_S)
    server = DrainingServer(
        uvicorn.Config(cutoff, timeout_graceful_shutdown=timeout, **config), cutoff=cutoff, drain_timeout=drain_timeout
    )
    server.run()
    return server.started
