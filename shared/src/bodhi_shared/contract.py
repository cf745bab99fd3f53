"""The contract between the API and the workers: the jobs it enqueues and the events they publish back.

Both travel as msgpack (never pickle). A job is an arq job whose single argument is ``InferenceJob.to_wire()``
(or ``ProviderCheckJob.to_wire()``); events are published on the job's ``channel`` (the API replica's own,
``RedisKeys.replica_channel``) in the order a worker produces them, each stamped with its request id:

    STARTED -> (CHUNK ...)* -> DONE          a streamed completion; a CHUNK holds one or more SSE frames
    STARTED -> RESPONSE                      a non-streamed answer (the provider's whole body), or the JSON
                                             answer of a provider check
    STARTED -> ... -> ERROR                  a failure, before or after the first chunk

STARTED names the worker and its kind (``meta["worker"]``, ``meta["kind"]``) so the API can notice it dying;
DONE and RESPONSE carry the token usage (``meta["usage"]``); an ERROR may carry the provider's ``Retry-After`` and
``x-ratelimit-*`` headers (``meta["headers"]``) for the client's response. The API cancels a job by publishing
its request id on ``RedisKeys.cancel_channel``.

A job of an inbound format other than OpenAI's (``Endpoint.RESPONSES``, ``Endpoint.MESSAGES``) is answered in that
format: CHUNK frames are its events, RESPONSE its body, usage still in chat form (``prompt_tokens``,
``completion_tokens``). Its ERROR before the first chunk holds the route's error body; after it, the worker may end
the stream with the format's own closing error frames: an ERROR whose ``meta[IN_BAND]`` is true holds them (SSE
frames, written to the client as they are).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack

INFERENCE_FUNCTION = "inference"
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

    ``sealed_key`` is a ``crypto.SealedSecret`` in bytes, bound to ``key_row`` and ``base_url``
    (``crypto.key_binding``): the API model's id for a stored key, ``ephemeral:{request_id}`` for a key typed into
    a form and never stored. A worker opens it only for the very URL it was sealed with, so no code path can send
    a key to another server. ``api_model_name`` names the API model in errors ("an admin must update its key").
    ``api_format`` is what the provider speaks (``openai``, ``openai-responses``, ``anthropic``: the worker's
    ``provider_formats``); ``extra_headers`` are the API model's own headers, sent on every call to it.
    """

    base_url: str
    key_row: str
    sealed_key: bytes
    api_model_name: str = ""
    api_format: str = "openai"
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalModel:
    """A local alias as a local worker needs it: the GGUF file and how to load it."""

    alias: str
    path: str
    context_params: dict[str, Any]  # llama_cpp.Llama keyword arguments: n_ctx, n_gpu_layers, ...


class Endpoint(enum.StrEnum):
    """The OpenAI endpoints a worker forwards to, as paths under the provider's base URL."""

    CHAT_COMPLETIONS = "chat/completions"
    COMPLETIONS = "completions"  # legacy text completions: a `prompt`, no messages
    EMBEDDINGS = "embeddings"
    # Inbound formats the workers translate to chat completions (``bodhi_shared.api_formats``), unless the provider
    # speaks them itself; the answer goes back in the inbound format.
    RESPONSES = "responses"  # the OpenAI Responses API
    MESSAGES = "messages"  # Anthropic Messages


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceJob:
    """One request for a worker to forward to a provider and relay back."""

    request_id: str
    channel: str
    upstream: Upstream | None = None  # a remote job: the provider to call
    local: LocalModel | None = None  # a local job: the model to run
    endpoint: str  # an ``Endpoint`` value
    body: bytes  # the client's JSON body with ``model`` rewritten for the upstream
    stream: bool
    # False when the API added ``stream_options.include_usage`` itself: the usage chunk is then not relayed.
    relay_usage_chunk: bool = True
    pickup_deadline: float  # unix time after which the API has given up waiting; the job is skipped
    # The client's own X-Request-Id, passed on to the provider for tracing; ``request_id`` (server-made) routes.
    client_request_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> InferenceJob:
        upstream, local = data.pop("upstream"), data.pop("local")
        return cls(
            upstream=Upstream(**upstream) if upstream else None, local=LocalModel(**local) if local else None, **data
        )


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


# An ERROR event's ``meta`` key: true when its ``data`` is SSE frames that end the stream in the route's own format.
IN_BAND = "in_band"


class EventKind(enum.IntEnum):
    STARTED = 1
    CHUNK = 2
    RESPONSE = 3
    ERROR = 4
    DONE = 5


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a request's stream.

    ``data`` is SSE frames (CHUNK), a response body (RESPONSE) or an OpenAI error body (ERROR); ``meta`` carries
    the worker id (STARTED) and token usage (DONE, RESPONSE).
    """

    kind: EventKind
    status: int = 200
    data: bytes = b""
    meta: dict[str, Any] | None = None
    request_id: str = ""  # which request it belongs to: one API replica's channel carries many requests

    def encode(self) -> bytes:
        return pack((int(self.kind), self.status, self.data, self.meta, self.request_id))

    @classmethod
    def decode(cls, raw: bytes) -> StreamEvent:
        kind, status, data, meta, request_id = unpack(raw)
        return cls(EventKind(kind), status, data, meta, request_id)

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = (self.meta or {}).get("usage")
        return usage if isinstance(usage, dict) else None
