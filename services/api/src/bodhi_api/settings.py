import ipaddress
import re

from pydantic import Field, field_validator

from bodhi_shared.settings import DrainSettings, PostgresSettings, RedisSettings, UpstreamPolicySettings
from bodhi_shared.worker_keys import WorkerPublicKeySettings


class ApiSettings(PostgresSettings, RedisSettings, WorkerPublicKeySettings, UpstreamPolicySettings, DrainSettings):
    """Settings of an API replica (``BODHI_*`` environment variables)."""

    host: str = "127.0.0.1"
    port: int = 1135
    migrate_on_start: bool = True
    # How long a job may wait in the queue while no worker takes any job off it before the client gets 503.
    pickup_timeout: float = 10.0
    # How long a job may wait behind others in a queue that keeps moving (busy workers, e.g. a local model
    # answering one request at a time) before the client gets 503.
    queue_timeout: float = 600.0
    # Longest silence between two events of one request before the client gets an error.
    stream_idle_timeout: float = 330.0
    # While a stream waits, a ": keep-alive" comment this often (load balancers cut idle connections).
    sse_keepalive_interval: float = 15.0
    # Events buffered for one client before it is cut off as too slow.
    stream_buffer_limit: int = 10_000
    # Bytes buffered for one client (payloads, plus a fixed cost per event) before it is cut off as too slow: what
    # bounds a slow client's memory, whatever the size of the chunks.
    stream_buffer_bytes: int = 16 * 1024 * 1024
    # Jobs waiting in the queue beyond which new requests get 429.
    queue_depth_limit: int = 1_000
    # Comma-separated IPs/CIDRs of the reverse proxies in front of the API. Only a request whose TCP peer is one of
    # them has its client address (the login limit's), scheme and host taken from X-Forwarded-For / -Proto / -Host
    # (``forwarded.ForwardedHeadersMiddleware``); empty: those headers are ignored, since any client can send them.
    trusted_proxies: str = ""
    # Request bodies larger than this get 413 (``body_limit.BodyLimitMiddleware``) before they are read whole.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    # `GET /metrics` without credentials (by default any signed-in user or token may read it).
    metrics_public: bool = False
    # Also serve the metrics, unauthenticated, on this port (prometheus-client's server, in this process); at
    # `metrics_host`, by default the API's own `host`.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str | None = None
    # Comma-separated origins (`https://app.example.com`) whose browser apps may call the API (``cors``); `*` for
    # any. None by default: browsers then let only the API's own pages read its answers.
    cors_origins: str = ""
    # How long a stored Responses API answer (`store`, on by default) can be read back or continued with
    # `previous_response_id`; expired ones are deleted lazily (``responses_store``).
    responses_retention_days: float = Field(default=30, gt=0)

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str) -> str:
        _origins(value)  # a typo refused at startup, not a browser app that silently cannot call
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return _origins(self.cors_origins)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        _networks(value)  # refuse a typo at startup rather than trust nobody (or the wrong host) silently
        return value

    @property
    def trusted_proxy_networks(self) -> list[str]:
        """``trusted_proxies`` as networks (``10.0.0.1/32``), the form uvicorn's ``forwarded_allow_ips`` matches."""
        return _networks(self.trusted_proxies)

    @property
    def queue_wait_limit(self) -> float:
        """The longest any job waits for a worker: the API gives up on it then, and a worker skips it after."""
        return max(self.pickup_timeout, self.queue_timeout)


def _networks(value: str) -> list[str]:
    return [str(ipaddress.ip_network(entry.strip(), strict=False)) for entry in value.split(",") if entry.strip()]


_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s@]+$")


def _origins(value: str) -> list[str]:
    """``scheme://host[:port]`` entries (as browsers send `Origin`: lowercase, no path), or `*`."""
    origins = [entry.strip().rstrip("/").lower() for entry in value.split(",") if entry.strip()]
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ValueError(f"{origin!r} is not an origin: write it as scheme://host[:port], without a path.")
    return origins
