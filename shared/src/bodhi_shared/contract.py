"""The contract between the API and the workers: the jobs it enqueues and the events they publish back.

Both travel as msgpack (never pickle). A job is an arq job whose single argument is ``ChatJob.to_wire()``;
events are published on ``RedisKeys.stream_channel(request_id)`` in the order a worker produces them:

    STARTED -> (CHUNK ...)* -> DONE          a streamed completion
    STARTED -> RESPONSE                      a non-streamed completion (the provider's whole body), or the
                                             JSON answer of a provider check
    STARTED -> ... -> ERROR                  a failure, before or after the first chunk
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

CHAT_COMPLETION_FUNCTION = "chat_completion"
FETCH_MODELS_FUNCTION = "fetch_models"
TEST_CONNECTION_FUNCTION = "test_connection"


def pack(value: Any) -> bytes:
    """arq job serializer (msgpack)."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def unpack(data: bytes) -> Any:
    """arq job deserializer (msgpack)."""
    return msgpack.unpackb(data, raw=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    """Where a remote worker sends a request, with the provider key sealed for remote workers only.

    ``sealed_key`` is a ``crypto.SealedSecret`` in bytes, sealed with ``key_row`` as associated data: the API
    model's id for a stored key, ``ephemeral:{request_id}`` for a key typed into a form and never stored.
    """

    base_url: str
    key_row: str
    sealed_key: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatJob:
    """One chat completion for a worker to run."""

    request_id: str
    channel: str
    upstream: Upstream
    body: bytes  # the client's JSON body with ``model`` already rewritten for the upstream
    stream: bool
    pickup_deadline: float  # unix time after which the API has given up waiting; the job is skipped

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ChatJob:
        upstream = Upstream(**data.pop("upstream"))
        return cls(upstream=upstream, **data)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderCheckJob:
    """Fetch a provider's models, or send it a test request (``model`` set): the API never calls providers."""

    request_id: str
    channel: str
    upstream: Upstream
    model: str | None = None
    pickup_deadline: float

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ProviderCheckJob:
        upstream = Upstream(**data.pop("upstream"))
        return cls(upstream=upstream, **data)


class EventKind(enum.IntEnum):
    STARTED = 1
    CHUNK = 2
    RESPONSE = 3
    ERROR = 4
    DONE = 5


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a request's stream. ``data`` is an SSE payload, a response body or an error body."""

    kind: EventKind
    status: int = 200
    data: bytes = b""

    def encode(self) -> bytes:
        return pack((int(self.kind), self.status, self.data))

    @classmethod
    def decode(cls, raw: bytes) -> StreamEvent:
        kind, status, data = unpack(raw)
        return cls(EventKind(kind), status, data)
