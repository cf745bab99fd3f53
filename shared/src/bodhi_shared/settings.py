"""Settings fragments that each service composes into its own settings class.

Every setting is read from the environment with the ``BODHI_`` prefix (``BODHI_DATABASE_URL``, ...). Services
build their settings at startup, never at import time.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bodhi_shared.redis_keys import RedisKeys

LogFormat = Literal["text", "json"]


class BodhiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BODHI_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".bodhi")
    log_level: str = "INFO"
    # `json`: one JSON object per line (timestamp, level, logger, message, request_id, extras): bodhi_shared.logs
    log_format: LogFormat = "text"


class PostgresSettings(BodhiSettings):
    database_url: SecretStr | None = None
    database_pool_size: int = 10

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise SystemExit("BODHI_DATABASE_URL is not set: point it at Postgres, or run `bodhi serve`")
        return self.database_url.get_secret_value()


class RedisSettings(BodhiSettings):
    redis_url: SecretStr | None = None
    redis_prefix: str = "bodhi"
    # Idle workers are woken by a pub/sub message on enqueue; this poll is only the safety net.
    queue_poll_interval: float = 0.5
    heartbeat_interval: float = 1.0
    heartbeat_ttl: float = 3.0

    def require_redis_url(self) -> str:
        if self.redis_url is None:
            raise SystemExit("BODHI_REDIS_URL is not set: point it at Redis, or run `bodhi serve`")
        return self.redis_url.get_secret_value()

    @property
    def redis_keys(self) -> RedisKeys:
        return RedisKeys(self.redis_prefix)


class UpstreamPolicySettings(BodhiSettings):
    """Where providers may be: both the API (on save) and the remote workers (at connect) apply the rule."""

    # Loopback and private addresses as providers (a self-hosted model server on the LAN). `bodhi serve`, one
    # person's machine, allows them unless told otherwise; `bodhi api` / `bodhi remote-worker` refuse them.
    allow_private_upstreams: bool = False


class DrainSettings(BodhiSettings):
    """How long a stopping process lets the answers in flight finish: workers and API replicas read the same bound."""

    # On SIGTERM a worker stops taking jobs and an API replica stops accepting connections; answers still running
    # this many seconds later end with an in-band error (`data: {"error": ...}`, then `data: [DONE]`). A second
    # SIGTERM/SIGINT ends them at once.
    drain_timeout: float = Field(default=30.0, ge=0)
