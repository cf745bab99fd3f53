"""The ``chat_completion`` job: call the provider and publish what it answers on the request's channel."""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.asyncio import Redis

from bodhi_remote_worker.context import context_of
from bodhi_remote_worker.upstream import complete_chat, stream_chat
from bodhi_shared.contract import ChatJob, EventKind, StreamEvent
from bodhi_shared.errors import BodhiError

log = logging.getLogger(__name__)


async def publish(redis: Redis, channel: str, event: StreamEvent) -> None:
    await redis.publish(channel, event.encode())


async def chat_completion(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    worker = context_of(ctx)
    job = ChatJob.from_wire(payload)
    if time.time() > job.pickup_deadline:
        log.info("request %s skipped: the API stopped waiting for a worker", job.request_id)
        return
    await publish(worker.redis, job.channel, StreamEvent(EventKind.STARTED))
    try:
        if job.stream:
            async for data in stream_chat(worker.http, job.upstream, job.body):
                await publish(worker.redis, job.channel, StreamEvent(EventKind.CHUNK, data=data))
            await publish(worker.redis, job.channel, StreamEvent(EventKind.DONE))
        else:
            body = await complete_chat(worker.http, job.upstream, job.body)
            await publish(worker.redis, job.channel, StreamEvent(EventKind.RESPONSE, data=body))
    except BodhiError as exc:
        log.info("request %s failed: %s", job.request_id, exc.message)
        await publish(worker.redis, job.channel, StreamEvent(EventKind.ERROR, exc.status_code, exc.to_json()))
