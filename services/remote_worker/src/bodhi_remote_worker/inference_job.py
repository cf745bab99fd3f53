"""The ``inference`` job: forward a request to the provider and publish its answer on the request's channel."""

from __future__ import annotations

import json
import logging
from typing import Any

from bodhi_remote_worker import inbound_formats
from bodhi_remote_worker.context import RemoteWorkerContext, context_of
from bodhi_remote_worker.provider_formats.calls import forward_adapted, serving_adapter, stream_adapted
from bodhi_remote_worker.upstream import Provider, forward, stream_sse
from bodhi_shared.contract import EventKind, InferenceJob, StreamEvent
from bodhi_shared.errors import BodhiError, UpstreamError, UpstreamHTTPError
from bodhi_shared.event_publisher import EventPublisher
from bodhi_shared.job_runner import run_inference_job
from bodhi_shared.redis_keys import REMOTE_WORKER_KIND
from bodhi_shared.worker_metrics import ProviderCall

log = logging.getLogger(__name__)


async def inference(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    worker = context_of(ctx)
    job = InferenceJob.from_wire(payload)
    await run_inference_job(
        job,
        redis=worker.redis,
        cancels=worker.cancels,
        worker_id=worker.worker_id,
        kind=REMOTE_WORKER_KIND,
        # `/v1/responses` and `/v1/messages`: passed through, or as a chat completion translated back
        answer=lambda events: inbound_formats.answer(worker, job, events, relay=relay),
        metrics=worker.metrics,
    )


async def relay(worker: RemoteWorkerContext, job: InferenceJob, events: EventPublisher) -> StreamEvent:
    """Call the provider; chunks go out as they come; returns the closing DONE, RESPONSE or ERROR event."""
    try:
        return await _answer(worker, job, events)
    except UpstreamHTTPError as exc:
        if not exc.headers:
            raise
        # Before the first byte only (the status is read before any chunk): the API puts these headers on the
        # client's error response, so a 429's Retry-After reaches the client.
        log.info("request %s failed: %s", job.request_id, exc.message)
        return StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json(), meta={"headers": exc.headers})


async def _answer(worker: RemoteWorkerContext, job: InferenceJob, events: EventPublisher) -> StreamEvent:
    if job.upstream is None:
        raise BodhiError(f"Request {job.request_id} reached a remote worker without a provider.")
    provider = worker.provider(job.upstream)
    call = worker.metrics.provider_call(job.upstream.api_model_name)
    try:
        answered = await _call(worker, job, provider, events, call)
    except UpstreamError as exc:
        call.failed(exc)
        raise
    call.done()
    return answered


async def _call(
    worker: RemoteWorkerContext, job: InferenceJob, provider: Provider, events: EventPublisher, call: ProviderCall
) -> StreamEvent:
    # X-Request-Id upstream: the client's own id when it sent one (echoed to it too), else the server-made one.
    endpoint, client_request_id = job.endpoint, job.client_request_id or job.request_id
    adapter = serving_adapter(provider, endpoint)  # a provider of another API format: its answers translated
    if not job.stream:
        if adapter is None:
            body = await forward(
                worker.http, provider, job.body, endpoint=endpoint, client_request_id=client_request_id
            )
        else:
            body = await forward_adapted(worker.http, provider, adapter, job.body, client_request_id=client_request_id)
        return StreamEvent(EventKind.RESPONSE, data=body, meta={"usage": usage_in(body)})
    usage = None
    if adapter is None:
        chunks = stream_sse(worker.http, provider, job.body, endpoint=endpoint, client_request_id=client_request_id)
    else:
        chunks = stream_adapted(worker.http, provider, adapter, job.body, client_request_id=client_request_id)
    async for data in chunks:
        call.first_byte()
        if b'"usage"' in data and (found := usage_in(data)) is not None:
            usage = found
            if not job.relay_usage_chunk and is_usage_only(data):
                continue  # the API asked for it on the client's behalf; the client did not
        events.chunk(b"data: " + data + b"\n\n")
    return StreamEvent(EventKind.DONE, meta={"usage": usage})


def usage_in(body: bytes) -> dict[str, Any] | None:
    try:
        usage = json.loads(body).get("usage")
    except (ValueError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None


def is_usage_only(data: bytes) -> bool:
    try:
        return not json.loads(data).get("choices")
    except (ValueError, AttributeError):
        return False
