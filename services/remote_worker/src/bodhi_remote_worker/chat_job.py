"""The ``chat_completion`` job: call the provider and publish what it answers on the request's channel."""

from __future__ import annotations

import logging
import time
from typing import Any

from bodhi_remote_worker.context import context_of
from bodhi_remote_worker.upstream import complete_chat, stream_chat
from bodhi_shared.contract import ChatJob, EventKind, StreamEvent
from bodhi_shared.errors import BodhiError

log = logging.getLogger(__name__)


async def chat_completion(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    worker = context_of(ctx)
    job = ChatJob.from_wire(payload)
    if time.time() > job.pickup_deadline:
        log.info("request %s skipped: the API stopped waiting for a worker", job.request_id)
        return
    await worker.publish_started(job.channel)
    try:
        provider = worker.provider(job.upstream)
        if job.stream:
            async for data in stream_chat(worker.http, provider, job.body):
                await worker.publish(job.channel, StreamEvent(EventKind.CHUNK, data=data))
            await worker.publish(job.channel, StreamEvent(EventKind.DONE))
        else:
            body = await complete_chat(worker.http, provider, job.body)
            await worker.publish(job.channel, StreamEvent(EventKind.RESPONSE, data=body))
    except BodhiError as exc:
        log.info("request %s failed: %s", job.request_id, exc.message)
        await worker.publish(job.channel, StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json()))
