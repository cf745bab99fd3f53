"""Sending a job to the workers and waiting until one has taken it: the step between routing and relaying."""

from __future__ import annotations

import logging

from arq import ArqRedis

from bodhi_api.token_stream import Relay, StreamHub, first_content_event
from bodhi_shared.contract import CHAT_COMPLETION_FUNCTION, ChatJob
from bodhi_shared.errors import ServiceUnavailable
from bodhi_shared.queue import enqueue_job, withdraw_job
from bodhi_shared.redis_keys import RedisKeys

log = logging.getLogger(__name__)


class NoWorkerPickedUp(ServiceUnavailable):
    code = "no_worker_available"


async def dispatch_chat(
    hub: StreamHub,
    queue_pool: ArqRedis,
    keys: RedisKeys,
    job: ChatJob,
    *,
    model: str,
    pickup_timeout: float,
    idle_timeout: float,
) -> Relay:
    """Subscribe, enqueue, wait for a worker's STARTED and the first content event; return the relay."""
    subscription = await hub.subscribe(job.channel)
    try:
        queue = keys.remote_queue
        await enqueue_job(
            queue_pool,
            queue=queue,
            wake_channel=keys.wake_channel(queue),
            function=CHAT_COMPLETION_FUNCTION,
            payload=job.to_wire(),
            job_id=job.request_id,
            expires_s=pickup_timeout + 60,
        )
        try:
            started = await subscription.next_event(pickup_timeout)
        except TimeoutError:
            if await withdraw_job(queue_pool, queue=queue, job_id=job.request_id):
                raise NoWorkerPickedUp(
                    f"No worker took the request for model `{model}` within {pickup_timeout:g} s. "
                    "Check that a remote worker is running (`bodhi remote-worker`), then retry."
                ) from None
            started = await subscription.next_event(pickup_timeout)  # taken at the last moment
        first = await first_content_event(subscription, idle_timeout=idle_timeout, received=started)
        return Relay(hub, subscription, first, idle_timeout=idle_timeout)
    except BaseException:
        await hub.unsubscribe(subscription)
        raise
