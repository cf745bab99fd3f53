"""The typed context every remote-worker job receives (arq hands jobs a dict; this is what it holds)."""

from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from redis.asyncio import Redis

from bodhi_remote_worker.settings import RemoteWorkerSettings
from bodhi_remote_worker.upstream import Provider
from bodhi_shared.cancellation import CancelRegistry
from bodhi_shared.contract import EventKind, ProviderCheckJob, StreamEvent, Upstream
from bodhi_shared.worker_keys import WorkerKeyring
from bodhi_shared.worker_metrics import WorkerMetrics

CONTEXT_KEY = "bodhi"


@dataclass(frozen=True, slots=True)
class RemoteWorkerContext:
    settings: RemoteWorkerSettings
    redis: Redis
    http: httpx.AsyncClient
    keyring: WorkerKeyring
    cancels: CancelRegistry
    worker_id: str
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)

    def provider(self, upstream: Upstream) -> Provider:
        """Open the sealed key: the only place a provider key exists in plain text."""
        # Opened for the URL it is sent to: a key sealed for another base URL does not open.
        api_key = self.keyring.open(upstream.sealed_key, row=upstream.key_row, base_url=upstream.base_url)
        return Provider(
            base_url=upstream.base_url,
            api_key=api_key,
            api_model_name=upstream.api_model_name,
            api_format=upstream.api_format,
            extra_headers=dict(upstream.extra_headers),
        )

    async def publish(self, job: ProviderCheckJob, event: StreamEvent) -> None:
        await self.redis.publish(job.channel, replace(event, request_id=job.request_id).encode())

    async def publish_started(self, job: ProviderCheckJob) -> None:
        await self.publish(job, StreamEvent(EventKind.STARTED, meta={"worker": self.worker_id, "kind": "remote"}))


def context_of(ctx: dict[str, Any]) -> RemoteWorkerContext:
    worker: RemoteWorkerContext = ctx[CONTEXT_KEY]
    return worker
