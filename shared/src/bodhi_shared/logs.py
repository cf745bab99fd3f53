"""Logging of every Bodhi process: plain text or one JSON object per line (``BODHI_LOG_FORMAT``), each line of a
request carrying its server-made request id.

``configure_logging`` gives the root logger one handler on stderr; every other logger (uvicorn's, arq's, httpx's)
propagates to it, so all lines of a process share one format. A line logged while a request is being handled,
in the API or in a worker running that request's job, carries the request id: ``bound_request_id`` (or
``bind_request_id``) puts it in a context variable, and ``RequestIdFilter`` on the handler copies it onto each
record as ``request_id``. A JSON line holds ``timestamp``, ``level``, ``logger``, ``message``, the request id and
any ``extra`` fields of the call; a text line ends with ``[request <id>]``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from bodhi_shared.settings import BodhiSettings, LogFormat

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID_FIELD = "request_id"
# uvicorn adds an ANSI-coloured copy of some messages as an extra field: noise in a JSON line.
_DROPPED_EXTRAS = ("color_message",)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("bodhi_request_id", default=None)


def bind_request_id(request_id: str | None) -> contextvars.Token[str | None]:
    """Name ``request_id`` on every line logged from here on in this context (this task and those it starts)."""
    return request_id_var.set(request_id)


@contextlib.contextmanager
def bound_request_id(request_id: str | None) -> Iterator[None]:
    """``bind_request_id`` for the duration of the block."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Copies the current request id onto each record (unless the call gave one in ``extra``); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, REQUEST_ID_FIELD, None) is None:
            request_id = request_id_var.get()
            if request_id is not None:
                setattr(record, REQUEST_ID_FIELD, request_id)
        return True


class JobArgumentsFilter(logging.Filter):
    """Drops the job's arguments from arq's job-start line (``0.01s → <id>:inference(<args>)``, logged with
    ``(...)``): they are the client's request (its prompt) and the sealed provider key, which belong in no log."""

    def filter(self, record: logging.LogRecord) -> bool:
        starting = record.name == "arq.worker" and "→" in str(record.msg)
        if starting and isinstance(record.args, tuple) and len(record.args) == ARQ_START_ARGS:
            record.args = (*record.args[:2], "...", *record.args[3:])
        return True


ARQ_START_ARGS = 4  # arq 0.28's '%6.2fs → %s(%s)%s': wait, job, arguments, extra


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, with `` [request <id>]`` appended to the lines of a request."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, REQUEST_ID_FIELD, None)
        return line if request_id is None else f"{line} [request {request_id}]"


class _JsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")


def json_formatter() -> logging.Formatter:
    """One JSON object per line: ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, then the
    request id and the call's extras (a traceback as ``exc_info``)."""
    return _JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        reserved_attrs=[*RESERVED_ATTRS, *_DROPPED_EXTRAS],
    )


def build_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(JobArgumentsFilter())
    return handler


def configure_logging(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """Send every logger's records to one stderr handler in ``log_format``; replaces any handler set before."""
    if log_format not in ("text", "json"):
        raise SystemExit(f"BODHI_LOG_FORMAT must be `text` or `json`, not `{log_format}`")
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.addHandler(build_handler(log_format))
    root.setLevel(level.upper())


def configure_logging_from_environment() -> None:
    """``configure_logging`` with ``BODHI_LOG_LEVEL`` and ``BODHI_LOG_FORMAT``: first thing every command does."""
    settings = BodhiSettings()
    configure_logging(settings.log_level, settings.log_format)
