"""Pure ASGI middleware: one ``bodhi.access`` line per HTTP request, written when its response has ended.

A streamed answer is logged when its stream ends, an error like any other answer (an exception that escapes the
app is logged with the status the error handlers give it, ``error_handlers.as_bodhi_error``). The line names the
method, the path (never the query string, which could carry a secret), the status, the duration in ms, the
caller's user id once authenticated and, for inference, the served model; the request id comes with every line
of the request (``bodhi_shared.logs``). In JSON each is a field: ``method``, ``path``, ``status``,
``duration_ms``, ``user_id``, ``model``. The same middleware counts the request in ``Metrics.http_requests``,
labelled by route template (``/v1/models/{model_id:path}``, not the path asked for), never by a client's string.

Code running inside the request adds to its line with ``note`` (``principal.authenticate`` the user,
``inference.run_inference`` the model).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bodhi_api.error_handlers import as_bodhi_error

if TYPE_CHECKING:
    from bodhi_api.metrics import Metrics

log = logging.getLogger("bodhi.access")

UNMATCHED_ROUTE = "unmatched"  # a path no route serves: its label, so 404 probes cannot grow the label set


@dataclass(slots=True)
class AccessRecord:
    """What one request's access line will say beyond what the ASGI messages do."""

    user_id: str | None = None
    model: str | None = None


_current: contextvars.ContextVar[AccessRecord | None] = contextvars.ContextVar("bodhi_access_record", default=None)


def note(*, user_id: object | None = None, model: str | None = None) -> None:
    """Add the caller or the model to the access line of the request being handled (if any)."""
    record = _current.get()
    if record is None:
        return
    if user_id is not None:
        record.user_id = str(user_id)
    if model is not None:
        record.model = model


def printable(text: str) -> str:
    """``text``, control characters escaped: a percent-encoded newline in a path must not start a forged line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path", None)  # as declared: `/v1/models/{model_id:path}`
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record = AccessRecord()
        _current.set(record)  # this request's task, and the tasks it starts, see it
        status: int | None = None

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except asyncio.CancelledError:
            # The replica stopping (``DrainCutoff`` answers 503 when it cuts a request that had not answered).
            self._log(scope, record, status or 503, started, cancelled=True)
            raise
        except Exception as exc:
            self._log(scope, record, status or as_bodhi_error(exc).status_code, started)
            raise
        self._log(scope, record, status or 500, started)

    def _log(self, scope: Scope, record: AccessRecord, status: int, started: float, *, cancelled: bool = False) -> None:
        duration_s = time.perf_counter() - started
        method, path = scope["method"], printable(scope["path"])
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_s * 1000, 1),
        }
        words = [f"{method} {path} {status} {fields['duration_ms']:.1f} ms"]
        if record.user_id is not None:
            fields["user_id"] = record.user_id
            words.append(f"user={record.user_id}")
        if record.model is not None:
            fields["model"] = printable(record.model)
            words.append(f"model={fields['model']}")
        if cancelled:
            fields["cancelled"] = True
            words.append("(cut short)")
        log.info(" ".join(words), extra=fields)
        metrics = _metrics(scope)
        if metrics is not None:
            route = route_label(scope)
            metrics.http_requests.labels(method, route, str(status)).inc()
            metrics.http_duration.labels(method, route).observe(duration_s)


def _metrics(scope: Scope) -> Metrics | None:
    """The replica's metrics, once its lifespan has opened its resources."""
    app = scope.get("app")
    resources = getattr(getattr(app, "state", None), "resources", None)
    metrics: Metrics | None = getattr(resources, "metrics", None)
    return metrics
