"""Acting as the API towards local workers: the catalogue, enqueued jobs, the events they publish."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from arq import ArqRedis
from redis.asyncio import Redis

from bodhi_shared.contract import INFERENCE_FUNCTION, EventKind, InferenceJob, LocalModel, StreamEvent
from bodhi_shared.heartbeat import SLOTS_FIELD
from bodhi_shared.queue import enqueue_job
from bodhi_shared.redis_keys import RedisKeys
from tests.support.processes import BodhiProcess

END = (EventKind.DONE, EventKind.RESPONSE, EventKind.ERROR)
STARTUP_LINE = re.compile(r"local worker (\S+) gpu=(\S+) CUDA_VISIBLE_DEVICES=(\S+)")


class Events:
    """The events of one request, read from its channel (subscribed before the job was enqueued)."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def next(self, within: float) -> StreamEvent | None:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is not None and message["type"] == "message":
                return StreamEvent.decode(message["data"])
        return None

    async def until_end(self, within: float = 20) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        deadline = time.monotonic() + within
        while not events or events[-1].kind not in END:
            event = await self.next(deadline - time.monotonic())
            assert event is not None, f"no end event within {within} s; got {events}"
            events.append(event)
        return events


@dataclass
class LocalApi:
    redis: Redis
    pool: ArqRedis
    keys: RedisKeys

    async def put_alias(self, alias: str, path: str, context_params: dict[str, Any]) -> LocalModel:
        entry = {"alias": alias, "path": path, "context_params": context_params}
        await self.redis.hset(self.keys.local_aliases, alias, json.dumps(entry))  # type: ignore[misc]
        return LocalModel(alias=alias, path=path, context_params=context_params)

    async def remove_alias(self, alias: str) -> None:
        await self.redis.hdel(self.keys.local_aliases, alias)  # type: ignore[misc]

    async def announce_catalogue(self) -> None:
        """What the API does after it rewrote the catalogue: tell the workers that follow it."""
        await self.redis.publish(self.keys.local_worker_control, b"catalogue")

    async def followers(self) -> set[str]:
        return {member.decode() for member in await self.redis.zrange(self.keys.local_followers, 0, -1)}

    @asynccontextmanager
    async def job(
        self,
        local: LocalModel,
        body: dict[str, Any],
        *,
        endpoint: str = "chat/completions",
        relay_usage_chunk: bool = True,
        request_id: str | None = None,
        pickup_deadline: float | None = None,
    ) -> AsyncIterator[Events]:
        """Subscribe to a new request's channel, enqueue its job on the alias's queue, yield its events."""
        request_id = request_id or uuid.uuid4().hex
        channel = self.keys.replica_channel(request_id)
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(channel)
        confirmation = await pubsub.get_message(timeout=5)  # as the API does: enqueue only once subscribed
        assert confirmation is not None
        assert confirmation["type"] == "subscribe"
        job = InferenceJob(
            request_id=request_id,
            channel=channel,
            local=local,
            endpoint=endpoint,
            body=json.dumps({"model": local.alias, **body}).encode(),
            stream=bool(body.get("stream")),
            relay_usage_chunk=relay_usage_chunk,
            pickup_deadline=time.time() + 30 if pickup_deadline is None else pickup_deadline,
        )
        queue = self.keys.local_queue(local.alias)
        await enqueue_job(
            self.pool,
            queue=queue,
            wake_channel=self.keys.wake_channel(queue),
            function=INFERENCE_FUNCTION,
            payload=job.to_wire(),
            job_id=request_id,
            expires_s=30,
        )
        try:
            yield Events(pubsub)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def run(
        self, local: LocalModel, body: dict[str, Any], *, within: float = 20, **options: Any
    ) -> list[StreamEvent]:
        async with self.job(local, body, **options) as events:
            return await events.until_end(within)

    async def cancel(self, request_id: str) -> None:
        await self.redis.publish(self.keys.cancel_channel, request_id)

    async def alias_workers(self, alias: str) -> dict[str, float]:
        members = await self.redis.zrange(self.keys.alias_workers(alias), 0, -1, withscores=True)
        return {member.decode(): score for member, score in members}

    async def alias_slots(self, alias: str) -> dict[str, int]:
        """The slots in use and free that the workers serving ``alias`` advertise (``heartbeat.SLOTS_FIELD``)."""
        totals = {"in_use": 0, "free": 0}
        for worker_id in await self.alias_workers(alias):
            info = self.keys.worker_info(worker_id)
            described = await self.redis.hget(info, SLOTS_FIELD)  # type: ignore[misc]  # sync|async union
            for state, count in json.loads(described or "{}").get(alias, {}).items():
                totals[state] += count
        return totals

    async def wait_for_alias_workers(self, alias: str, expected: set[str], within: float = 20) -> None:
        deadline = time.monotonic() + within
        while set(await self.alias_workers(alias)) != expected:
            assert time.monotonic() < deadline, f"{alias} served by {await self.alias_workers(alias)}, not {expected}"
            await asyncio.sleep(0.05)


def chunk_payloads(events: list[StreamEvent]) -> list[dict[str, Any]]:
    """The JSON objects of every SSE frame of the CHUNK events."""
    payloads = []
    for event in events:
        if event.kind != EventKind.CHUNK:
            continue
        frames = event.data.split(b"\n\n")
        assert frames[-1] == b"", event.data
        for frame in frames[:-1]:
            assert frame.startswith(b"data: "), frame
            payloads.append(json.loads(frame.removeprefix(b"data: ")))
    return payloads


async def startup_line(process: BodhiProcess, within: float = 20) -> tuple[str, str, str]:
    """The worker id, gpu and CUDA_VISIBLE_DEVICES a local worker logs when it starts."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if found := STARTUP_LINE.search(process.log_text()):
            return found.group(1), found.group(2), found.group(3)
        assert process.popen.poll() is None, process.log_text()
        await asyncio.sleep(0.05)
    raise AssertionError(f"no start-up line:\n{process.log_text()}")
