"""The ``fetch_models`` and ``test_connection`` jobs: provider checks for the API-models pages.

They run here, not in the API, so the internet-facing tier never holds a key or calls out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from bodhi_remote_worker.context import RemoteWorkerContext, context_of
from bodhi_remote_worker.provider_checks import give_up_after, list_models, test_connection
from bodhi_shared.contract import (
    FETCH_MODELS_FUNCTION,
    TEST_CONNECTION_FUNCTION,
    EventKind,
    ProviderCheckJob,
    StreamEvent,
)
from bodhi_shared.errors import BodhiError, ProviderCheckFailed
from bodhi_shared.logs import bound_request_id
from bodhi_shared.worker_metrics import JobOutcome

log = logging.getLogger(__name__)


def _answer(body: dict[str, Any]) -> StreamEvent:
    return StreamEvent(EventKind.RESPONSE, data=json.dumps(body).encode())


def _failed(exc: BodhiError) -> StreamEvent:
    return StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json())


@contextlib.contextmanager
def _check(worker: RemoteWorkerContext, job: ProviderCheckJob, function: str) -> Iterator[Callable[[JobOutcome], None]]:
    """The check's lines name its request; its outcome is counted."""
    with bound_request_id(job.request_id), worker.metrics.job(function) as report:
        yield report


async def fetch_models(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    worker = context_of(ctx)
    job = ProviderCheckJob.from_wire(payload)
    with _check(worker, job, FETCH_MODELS_FUNCTION) as report:
        if time.time() > job.pickup_deadline:
            report(JobOutcome.SKIPPED)
            return
        await worker.publish_started(job)
        try:
            provider = worker.provider(job.upstream)
            async with give_up_after(worker.settings.provider_check_timeout, base_url=provider.base_url):
                models = await list_models(
                    worker.http,
                    base_url=provider.base_url,
                    api_key=provider.api_key,
                    api_format=provider.api_format,
                    extra_headers=provider.extra_headers,
                )
        except BodhiError as exc:
            report(JobOutcome.ERROR)
            log.info("fetch models %s failed: %s", job.request_id, exc.message)
            await worker.publish(job, _failed(exc))
            return
        await worker.publish(job, _answer({"models": models}))


async def check_connection(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """A provider's refusal is an answer (``success: false`` with a stable code), not an error."""
    worker = context_of(ctx)
    job = ProviderCheckJob.from_wire(payload)
    with _check(worker, job, TEST_CONNECTION_FUNCTION) as report:
        if time.time() > job.pickup_deadline:
            report(JobOutcome.SKIPPED)
            return
        await worker.publish_started(job)
        try:
            provider = worker.provider(job.upstream)
            async with give_up_after(worker.settings.provider_check_timeout, base_url=provider.base_url):
                reply = await test_connection(
                    worker.http,
                    base_url=provider.base_url,
                    api_key=provider.api_key,
                    model=job.model or "",
                    api_format=provider.api_format,
                    extra_headers=provider.extra_headers,
                )
        except ProviderCheckFailed as exc:
            report(JobOutcome.ERROR)
            log.info("test connection %s failed: %s", job.request_id, exc.code)
            await worker.publish(job, _answer({"success": False, "error": exc.message, "error_code": exc.code}))
            return
        except BodhiError as exc:
            report(JobOutcome.ERROR)
            await worker.publish(job, _failed(exc))
            return
        await worker.publish(job, _answer({"success": True, "response": reply}))
