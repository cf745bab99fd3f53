"""The life of a job on a real Redis: whatever the answer raises, the client hears of it in an ERROR event."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from bodhi_shared.cancellation import CancelRegistry
from bodhi_shared.contract import EventKind, InferenceJob, StreamEvent
from bodhi_shared.event_publisher import EventPublisher
from bodhi_shared.job_runner import run_inference_job
from bodhi_shared.queue import create_queue_pool


async def test_an_unexpected_exception_ends_the_request_with_an_error_event(redis_url: str, redis_prefix: str) -> None:
    redis = await create_queue_pool(redis_url)
    channel, request_id = f"{redis_prefix}:replica:test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    cancels = CancelRegistry(redis, f"{redis_prefix}:cancel-test")
    await cancels.start()
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    job = InferenceJob(
        request_id=request_id,
        channel=channel,
        endpoint="chat/completions",
        body=b"{}",
        stream=True,
        pickup_deadline=time.time() + 60,
    )

    async def broken_answer(events: EventPublisher) -> StreamEvent:
        raise KeyError("a bug, not a provider's answer")

    try:
        await run_inference_job(
            job, redis=redis, cancels=cancels, worker_id="test-worker", kind="remote", answer=broken_answer
        )
        kinds: list[EventKind] = []
        last: StreamEvent | None = None
        async with asyncio.timeout(5):
            while not kinds or kinds[-1] != EventKind.ERROR:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    last = StreamEvent.decode(message["data"])
                    kinds.append(last.kind)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await cancels.stop()
        await redis.aclose()

    assert kinds == [EventKind.STARTED, EventKind.ERROR]  # before: no ERROR; the client waited out the idle timeout
    assert last is not None
    assert last.status == 500
    assert "internal error" in json.loads(last.data)["error"]["message"]
