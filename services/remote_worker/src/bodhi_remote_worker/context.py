"""The typed context every remote-worker job receives (arq hands jobs a dict; this is what it holds)."""

from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from bodhi_remote_worker.settings import RemoteWorkerSettings

CONTEXT_KEY = "bodhi"


@dataclass(frozen=True, slots=True)
class RemoteWorkerContext:
    settings: RemoteWorkerSettings
    redis: Redis
    http: httpx.AsyncClient


def context_of(ctx: dict[str, Any]) -> RemoteWorkerContext:
    worker: RemoteWorkerContext = ctx[CONTEXT_KEY]
    return worker
