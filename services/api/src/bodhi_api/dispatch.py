"""Sending a job to the workers and waiting until one has taken it: the step between routing and relaying."""

from __future__ import annotations

from typing import Any

from bodhi_api.resources import Resources
from bodhi_api.token_stream import Relay, first_content_event
from bodhi_shared.errors import ServiceUnavailable
from bodhi_shared.queue import enqueue_job, withdraw_job


class NoWorkerPickedUp(ServiceUnavailable):
    code = "no_worker_available"


async def dispatch(
    resources: Resources, *, function: str, payload: dict[str, Any], request_id: str, channel: str, subject: str
) -> Relay:
    """Subscribe, enqueue, wait for a worker's STARTED and the first content event; return the relay.

    ``subject`` names what was asked for (``model `x```) in the 503 a client gets when no worker takes the job.
    """
    settings, keys = resources.settings, resources.keys
    subscription = await resources.hub.subscribe(channel)
    try:
        queue = keys.remote_queue
        await enqueue_job(
            resources.redis,
            queue=queue,
            wake_channel=keys.wake_channel(queue),
            function=function,
            payload=payload,
            job_id=request_id,
            expires_s=settings.pickup_timeout + 60,
        )
        try:
            started = await subscription.next_event(settings.pickup_timeout)
        except TimeoutError:
            if await withdraw_job(resources.redis, queue=queue, job_id=request_id):
                raise NoWorkerPickedUp(
                    f"No worker took the request for {subject} within {settings.pickup_timeout:g} s. "
                    "Check that a remote worker is running (`bodhi remote-worker`), then retry."
                ) from None
            started = await subscription.next_event(settings.pickup_timeout)  # taken at the last moment
        first = await first_content_event(subscription, idle_timeout=settings.stream_idle_timeout, received=started)
        return Relay(resources.hub, subscription, first, idle_timeout=settings.stream_idle_timeout)
    except BaseException:
        await resources.hub.unsubscribe(subscription)
        raise
