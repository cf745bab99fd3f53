"""Relaying an accepted request's events to its client as server-sent events, then reporting how it ended."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bodhi_api.error_handlers import as_bodhi_error
from bodhi_api.event_reader import EventReader, publish_cancel
from bodhi_api.stream_hub import API_SIDE, error_event
from bodhi_api.stream_wire import OPENAI_WIRE, SSE_DONE, SSE_KEEPALIVE, StreamWire, sse_data
from bodhi_shared.contract import IN_BAND, EventKind, StreamEvent

if TYPE_CHECKING:
    from bodhi_api.resources import Resources

log = logging.getLogger(__name__)

__all__ = ["SSE_DONE", "SSE_KEEPALIVE", "Outcome", "Relay", "sse_data"]


@dataclass
class Outcome:
    """How a relayed request ended, for usage records and metrics."""

    status: str = "cancelled"  # "ok" | "error" | "cancelled"
    http_status: int = 499
    usage: dict[str, Any] | None = None
    worker_finished: bool = False  # else the relay tells the worker to stop


class Relay:
    """An accepted request whose first content event has arrived; relays the rest, then reports the outcome."""

    def __init__(
        self,
        resources: Resources,
        reader: EventReader,
        first: StreamEvent,
        *,
        request_id: str,
        on_finish: Callable[[Outcome], None],
        wire: StreamWire = OPENAI_WIRE,
    ) -> None:
        self._resources = resources
        self.wire = wire  # how the stream ends and fails: the route's format
        self._reader = reader
        self.first = first
        self._request_id = request_id
        self._on_finish = on_finish
        self._closed = False

    def close(self, outcome: Outcome) -> None:
        """Stop listening (and tell the worker to stop, if it had not finished); never blocks."""
        if self._closed:
            return
        self._closed = True
        hub, keys = self._resources.hub, self._resources.keys
        hub.close(self._reader.subscription)
        if not outcome.worker_finished:
            self._resources.spawn(publish_cancel(self._resources.redis, keys.cancel_channel, self._request_id))
        self._on_finish(outcome)

    async def _next_or_error(self) -> StreamEvent | None:
        """The next event; any failure to read it (Redis gone while checking the worker, ...) as an ERROR event:
        the response has started, so it can only end in-band."""
        try:
            return await self._reader.next(keepalive_after=self._resources.settings.sse_keepalive_interval)
        except Exception as exc:
            error = as_bodhi_error(exc)
            log.warning("request %s: the stream broke off (%s)", self._request_id, type(exc).__name__, exc_info=exc)
            return error_event(error)

    async def sse(self) -> AsyncIterator[bytes]:
        """The SSE body: chunks as they arrive, keep-alives while waiting, an in-band error if one comes, then
        ``[DONE]`` (in the route's format: ``wire``). A client that goes away cancels the job."""
        outcome = Outcome()
        try:
            event: StreamEvent | None = self.first
            while True:
                if event is None:
                    yield SSE_KEEPALIVE
                elif event.kind == EventKind.CHUNK:
                    self.wire.relayed(event.data)
                    yield event.data
                elif event.kind == EventKind.DONE:
                    outcome = Outcome("ok", 200, event.usage, worker_finished=True)
                    if closing := self.wire.done():
                        yield closing
                    break
                elif event.kind == EventKind.ERROR:
                    meta = event.meta or {}
                    outcome = Outcome("error", event.status, worker_finished=not meta.get(API_SIDE))
                    # a worker's own closing frames (``contract.IN_BAND``), or an error body to write in the format
                    yield event.data if meta.get(IN_BAND) else self.wire.error(event.status, event.data)
                    break
                event = await self._next_or_error()
        finally:
            self.close(outcome)
