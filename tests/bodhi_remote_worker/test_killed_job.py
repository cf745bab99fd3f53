"""A worker killed mid-job (SIGKILL, out of memory) leaves no arq bookkeeping behind for a day.

arq counts a job's tries in ``arq:retry:{job id}`` with a 24.5-hour TTL, marks it ``arq:in-progress:{job id}`` for
the job timeout (an hour) and deletes both, with the job, when the job ends; a job that never ends, because its
worker was killed, would leave them there. Bodhi's jobs run once, so the worker deletes them as the job starts.
"""

from __future__ import annotations

import asyncio

import httpx
import redis.asyncio as aioredis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from tests.conftest import RegisterUpstream, StartGateway
from tests.support.fake_upstream import FakeUpstream, Script


async def test_a_killed_worker_leaves_no_retry_key_behind(
    start_gateway: StartGateway, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream, redis_url: str
) -> None:
    own = start_gateway()
    assert own.worker is not None
    model = await register_upstream(Script(hang=True))  # the job is mid-call when its worker dies
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=30) as http:
        answer = asyncio.ensure_future(http.post("/v1/chat/completions", json=body))
        for _ in range(200):
            if fake_upstream.requests_for(model):
                break
            await asyncio.sleep(0.05)
        assert fake_upstream.requests_for(model), "the job never reached the provider"
        own.worker.kill()
        response = await answer

    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "worker_lost"
    job_id = response.headers["x-bodhi-request-id"]
    client = aioredis.Redis.from_url(redis_url)
    try:
        ttls = {
            prefix: await client.ttl(prefix + job_id)
            for prefix in (retry_key_prefix, job_key_prefix, in_progress_key_prefix)
        }
    finally:
        await client.aclose()
    assert ttls == dict.fromkeys(ttls, -2)  # -2: no such key (arq's would have lived 88,400 s and 3,610 s)
