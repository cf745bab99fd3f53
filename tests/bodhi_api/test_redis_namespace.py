"""``BODHI_REDIS_PREFIX`` namespaces every key a request makes, except the arq keys the README names as not under it.

The gateway here has a Redis of its own with keyspace notifications on, so every key written while it starts and
serves (even one deleted a millisecond later, as arq's per-job keys are) is seen, and no other test's keys are.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from tests.conftest import ADMIN_PASSWORD, Gateway, RegisterUpstream, StartGateway
from tests.support.backing import new_name
from tests.support.fake_upstream import Script
from tests.support.redis_process import RestartableRedis

README = Path(__file__).parents[2] / "README.md"
SERVER_REQUEST_ID = "[0-9a-f]{32}"  # request_id.RequestIdMiddleware: uuid4().hex, never the client's id


def documented_unprefixed() -> set[str]:
    """The arq key prefixes the README's ``BODHI_REDIS_PREFIX`` row names as outside the namespace."""
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `BODHI_REDIS_PREFIX`"))
    return set(re.findall(r"`(arq:[a-z-]+:)<id>`", row))


@pytest.fixture
def own_redis(scratch: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(scratch / f"redis-{new_name('namespace')}.log")
    server.start()
    yield server
    server.stop()


class KeyRecorder:
    """Every key name Redis reports an event for (written, expired, deleted), from ``start()`` on."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.keys: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.config_set("notify-keyspace-events", "EA")
        pubsub = self.client.pubsub()
        await pubsub.psubscribe("__keyevent@*__:*")
        self._task = asyncio.create_task(self._record(pubsub))

    async def _record(self, pubsub: aioredis.client.PubSub) -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                self.keys.add(message["data"].decode())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()


@pytest.fixture
async def recorder(own_redis: RestartableRedis) -> AsyncIterator[KeyRecorder]:
    recording = KeyRecorder(own_redis.url)
    await recording.start()
    yield recording
    await recording.stop()


def test_the_readme_names_exactly_the_arq_keys_outside_the_prefix() -> None:
    assert documented_unprefixed() == {job_key_prefix, in_progress_key_prefix, retry_key_prefix}


async def test_every_key_a_request_makes_is_under_the_prefix_or_a_documented_arq_key(
    gateway: Gateway,
    start_gateway: StartGateway,
    register_upstream: RegisterUpstream,
    own_redis: RestartableRedis,
    recorder: KeyRecorder,
) -> None:
    model = await register_upstream(Script(chunks=3))  # before the gateway starts: it reads the routes then
    own = await asyncio.to_thread(start_gateway, BODHI_REDIS_URL=own_redis.url)
    prefix = own.env["BODHI_REDIS_PREFIX"]
    request_ids = []
    async with httpx.AsyncClient(base_url=own.base_url, timeout=30) as http:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        for stream in (False, True):
            answer = await http.post("/v1/chat/completions", json={**body, "stream": stream}, headers=own.auth_headers)
            assert answer.status_code == 200, answer.text
            request_ids.append(answer.headers["x-bodhi-request-id"])
        logged_in = await http.post(
            "/bodhi/v1/auth/login", json={"username": own.admin_username, "password": ADMIN_PASSWORD}
        )
        assert logged_in.status_code == 200, logged_in.text
    await asyncio.sleep(0.5)  # the last events of the jobs' ends

    documented = documented_unprefixed()
    outside = sorted(key for key in recorder.keys if not key.startswith(f"{prefix}:"))
    undocumented = [
        key for key in outside if not any(re.fullmatch(re.escape(p) + SERVER_REQUEST_ID, key) for p in documented)
    ]
    assert undocumented == [], f"keys outside {prefix}: that the README does not name: {undocumented}"
    # Not vacuous: each request's job was seen under arq's names, and none of them outlives its job.
    for request_id in request_ids:
        assert f"{job_key_prefix}{request_id}" in outside
        assert f"{in_progress_key_prefix}{request_id}" in outside
        assert f"{retry_key_prefix}{request_id}" in outside
    left = [key.decode() async for key in recorder.client.scan_iter(count=1000)]
    assert [key for key in left if not key.startswith(f"{prefix}:")] == []
