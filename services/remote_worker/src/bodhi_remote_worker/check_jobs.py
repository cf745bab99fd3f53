"""The ``fetch_models`` and ``test_connection`` jobs: provider checks for the API-models pages.

They run here, not in the API, so the internet-facing tier never holds a key or calls out.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from bodhi_remote_worker.context import context_of
from bodhi_remote_worker.provider_checks import give_up_after, list_models, test_connection
from bodhi_shared.contract import EventKind, ProviderCheckJob, StreamEvent
from bodhi_shared.errors import BodhiError, ProviderCheckFailed

log = logging.getLogger(__name__)


def _answer(body: dict[str, Any]) -> StreamEvent:
    return StreamEvent(EventKind.RESPONSE, data=json.dumps(body).encode())


def _failed(exc: BodhiError) -> StreamEvent:
    return StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json())


async def fetch_models(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    worker = context_of(ctx)
    job = ProviderCheckJob.from_wire(payload)
    if time.time() > job.pickup_deadline:
        return
    await worker.publish_started(job)
    try:
        provider = worker.provider(job.upstream)
        async with give_up_after(worker.settings.provider_check_timeout, base_url=provider.base_url):
            models = await list_models(worker.http, base_url=provider.base_url, api_key=provider.api_key)
    except BodhiError as exc:
        log.info("fetch models %s failed: %s", job.request_id, exc.message)
        await worker.publish(job, _failed(exc))
        return
    await worker.publish(job, _answer({"models": models}))


async def check_connection(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """A provider's refusal is an answer (``success: false`` with a stable code), not an error."""
    worker = context_of(ctx)
    job = ProviderCheckJob.from_wire(payload)
    if time.time() > job.pickup_deadline:
        return
    await worker.publish_started(job)
    try:
        provider = worker.provider(job.upstream)
        async with give_up_after(worker.settings.provider_check_timeout, base_url=provider.base_url):
            reply = await test_connection(
                worker.http, base_url=provider.base_url, api_key=provider.api_key, model=job.model or ""
            )
    except ProviderCheckFailed as exc:
        log.info("test connection %s failed: %s", job.request_id, exc.code)
        await worker.publish(job, _answer({"success": False, "error": exc.message, "error_code": exc.code}))
        return
    except BodhiError as exc:
        await worker.publish(job, _failed(exc))
        return
    await worker.publish(job, _answer({"success": True, "response": reply}))
