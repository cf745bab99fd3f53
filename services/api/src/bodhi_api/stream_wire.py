"""How a relayed stream ends, and fails in-band, in its route's format.

The workers write the frames of every format (``bodhi_shared.translated_jobs``); the relay passes them on
unread. What the API writes itself differs per route: the OpenAI streams end with ``data: [DONE]`` and fail with
``data: {"error": ...}``; the Responses API and Anthropic Messages streams have no ``[DONE]`` and fail with their
own events (``response.failed``; ``event: error``). The gateway's own failures mid-stream (a lost worker, a worker
that drains, a client too slow, Redis gone) arrive as OpenAI error bodies (``stream_hub.error_event``) and are
written here in the route's format. Keep-alive comments are the same in every format.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from bodhi_api.error_handlers import anthropic_error
from bodhi_shared.api_formats.responses_output import response_shell
from bodhi_shared.api_formats.responses_stream import ERROR_CODES, ResponsesStream
from bodhi_shared.api_formats.sse import frame
from bodhi_shared.translated_jobs import openai_error_of

log = logging.getLogger(__name__)


def sse_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


SSE_DONE = sse_data(b"[DONE]")
SSE_KEEPALIVE = b": keep-alive\n\n"


class StreamWire:
    """The OpenAI format (chat and text completions); a route of another format has a subclass, one per stream."""

    def relayed(self, data: bytes) -> None:
        """``data`` (a CHUNK's frames) is on its way to the client."""

    def done(self) -> bytes:
        """What ends a stream that ended well."""
        return SSE_DONE

    def error(self, status: int, body: bytes) -> bytes:
        """What ends a stream with the error ``body`` (an OpenAI error body)."""
        return sse_data(body) + SSE_DONE


OPENAI_WIRE = StreamWire()
# Where a request of another format leaves its stream's wire in its ASGI scope's ``state``, for what ends the stream
# from outside the app (``bodhi_cli.api_server.DrainCutoff``, at the end of a replica's drain).
STATE_KEY = "bodhi_stream_wire"


def wire_of(state: Mapping[str, Any] | None) -> StreamWire:
    """The wire a request's scope ``state`` names; the OpenAI one if none."""
    wire = (state or {}).get(STATE_KEY)
    return wire if isinstance(wire, StreamWire) else OPENAI_WIRE


class MessagesWire(StreamWire):
    """Anthropic Messages: ``message_stop`` (from the worker) ends it; an ``error`` event fails it."""

    def done(self) -> bytes:
        return b""

    def error(self, status: int, body: bytes) -> bytes:
        return frame("error", anthropic_error(status, body))


# The events whose Response is the one a stored response keeps.
FINAL_EVENTS = (b"event: response.completed\ndata: ", b"event: response.incomplete\ndata: ")
_SEQUENCE = re.compile(rb'"sequence_number":\s*(\d+)')


class ResponsesWire(StreamWire):
    """The Responses API: ``response.completed`` / ``response.incomplete`` end it, ``response.failed`` fails it.

    ``on_final`` gets the final Response of a stream that has one: only the frame of that event is parsed, found by
    a byte search in each chunk (frames are never split across chunks). A failure the gateway writes needs the
    next ``sequence_number``: it is read, then only, from the last chunk relayed.
    """

    def __init__(
        self, *, request: dict[str, Any], request_id: str, on_final: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self._request = request
        self._request_id = request_id
        self._on_final = on_final
        self._last: bytes | None = None

    def relayed(self, data: bytes) -> None:
        self._last = data
        if self._on_final is None:
            return
        for marker in FINAL_EVENTS:
            if (start := data.find(marker)) >= 0:
                response = _final_response(data, start + len(marker))
                if response is not None:
                    self._on_final(response)
                return

    def done(self) -> bytes:
        return b""

    def error(self, status: int, body: bytes) -> bytes:
        error = openai_error_of(body)
        model = str(self._request.get("model") or "")
        if self._last is None:  # nothing relayed yet: the stream must still open with response.created
            stream = ResponsesStream(model=model, request_id=self._request_id, request=self._request)
            return stream.error(status, error)
        response = response_shell(self._request, request_id=self._request_id, model=model, created_at=int(time.time()))
        message = error.get("message")
        response |= {
            "status": "failed",
            "error": {
                "code": ERROR_CODES.get(status, "server_error"),
                "message": message if isinstance(message, str) and message else f"The request failed (HTTP {status}).",
            },
        }
        return frame("response.failed", {"response": response, "sequence_number": _next_sequence(self._last)})


def _final_response(data: bytes, start: int) -> dict[str, Any] | None:
    end = data.find(b"\n", start)
    try:
        event = json.loads(data[start : end if end >= 0 else len(data)])
    except ValueError:
        log.warning("a response.completed event that is not JSON: the response is not stored")
        return None
    response = event.get("response") if isinstance(event, dict) else None
    return response if isinstance(response, dict) else None


def _next_sequence(last: bytes) -> int:
    numbers = _SEQUENCE.findall(last[-256:]) or _SEQUENCE.findall(last)
    return int(numbers[-1]) + 1 if numbers else 0
