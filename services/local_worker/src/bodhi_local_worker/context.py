"""The typed context every local-worker job receives (arq hands jobs a dict; this is what it holds)."""

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from bodhi_local_worker.models import ModelCache
from bodhi_local_worker.settings import LocalWorkerSettings
from bodhi_shared.cancellation import CancelRegistry
from bodhi_shared.worker_metrics import WorkerMetrics

CONTEXT_KEY = "bodhi"


@dataclass(frozen=True, slots=True)
class LocalWorkerContext:
    settings: LocalWorkerSettings
    redis: Redis
    models: ModelCache
    cancels: CancelRegistry
    worker_id: str
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)


def context_of(ctx: dict[str, Any]) -> LocalWorkerContext:
    worker: LocalWorkerContext = ctx[CONTEXT_KEY]
    return worker
