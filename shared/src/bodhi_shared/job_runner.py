"""The life of an inference job on any worker: the same steps for remote and local workers.

skip a job whose client stopped waiting -> STARTED -> the worker's own answer (cancellable by the API) ->
DONE / RESPONSE, or ERROR. A job cancelled because its client left publishes nothing more; a job stopped by the
worker's shutdown (once its drain, ``BODHI_DRAIN_TIMEOUT``, is over) or its timeout tells the client so before it
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bodhi_shared.cancellation import CancelRegistry, JobCancelled
from bodhi_shared.contract import INFERENCE_FUNCTION, EventKind, InferenceJob, StreamEvent
from bodhi_shared.errors import BodhiError, ServiceUnavailable
from bodhi_shared.event_publisher import EventPublisher, EventsUndeliverable
from bodhi_shared.logs import bound_request_id
from bodhi_shared.worker_metrics import JobOutcome, WorkerMetrics

log = logging.getLogger(__name__)

Answer = Callable[[EventPublisher], Awaitable[StreamEvent]]


async def run_inference_job(
    job: InferenceJob,
    *,
    redis: Redis,
    cancels: CancelRegistry,
    worker_id: str,
    kind: str,
    answer: Answer,
    metrics: WorkerMetrics | None = None,
) -> None:
    """Every line logged while the job runs names its request (``bodhi_shared.logs``); ``metrics`` counts it."""
    counted = metrics.job(INFERENCE_FUNCTION) if metrics is not None else contextlib.nullcontext(_uncounted)
    with bound_request_id(job.request_id), counted as report:
        await _run(job, redis=redis, cancels=cancels, worker_id=worker_id, kind=kind, answer=answer, report=report)


def _uncounted(outcome: JobOutcome) -> None:
    pass


async def _run(
    job: InferenceJob,
    *,
    redis: Redis,
    cancels: CancelRegistry,
    worker_id: str,
    kind: str,
    answer: Answer,
    report: Callable[[JobOutcome], None],
) -> None:
    if time.time() > job.pickup_deadline:
        log.info("request %s skipped: the API stopped waiting for a worker", job.request_id)
        report(JobOutcome.SKIPPED)
        return
    events = EventPublisher(redis, job.channel, request_id=job.request_id)
    events.emit(StreamEvent(EventKind.STARTED, meta={"worker": worker_id, "kind": kind}))  # not awaited: no stall
    try:
        outcome = await cancels.run(job.request_id, answer(events))
    except JobCancelled:
        report(JobOutcome.CANCELLED)
        events.abandon()
        return
    except asyncio.CancelledError:  # the worker's drain ran out, or the job's time: tell the client
        report(JobOutcome.STOPPED)
        log.warning("request %s cut short: the worker is stopping or the job ran out of time", job.request_id)
        stopped = ServiceUnavailable("The worker stopped before it finished this answer; retry the request.")
        with contextlib.suppress(Exception):
            await events.publish(StreamEvent(EventKind.ERROR, stopped.status_code, stopped.to_json()))
        raise
    except BodhiError as exc:
        report(JobOutcome.ERROR)
        log.info("request %s failed: %s", job.request_id, exc.message)
        outcome = StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json())
    except Exception:  # a bug, not a provider's answer: the client must still hear of it, not wait out its timeout
        report(JobOutcome.FAILED)
        log.exception("request %s failed unexpectedly", job.request_id)
        internal = BodhiError("The worker had an internal error while answering; retry, or check the worker's logs.")
        outcome = StreamEvent(EventKind.ERROR, internal.status_code, internal.to_json())
    else:
        report(JobOutcome.ERROR if outcome.kind == EventKind.ERROR else JobOutcome.OK)
    try:
        await events.publish(outcome)
    except (EventsUndeliverable, RedisError, OSError) as exc:  # Redis is gone: the client's replica gave up already
        log.warning("request %s: its last event could not be published (%s)", job.request_id, type(exc).__name__)
