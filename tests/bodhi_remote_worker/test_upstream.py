"""The provider adapter against the fake upstream (a real server on loopback)."""

from __future__ import annotations

import httpx
import pytest

from bodhi_remote_worker.upstream import Provider, forward, stream_sse
from bodhi_shared.errors import UpstreamHTTPError, UpstreamTimeout, UpstreamUnreachable
from tests.support.fake_upstream import FakeUpstream, Script, free_port


async def test_stream_yields_each_data_payload_until_done(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["adapter-stream"] = Script(chunks=3)
    upstream = Provider(base_url=fake_upstream.base_url, api_key="k")
    async with httpx.AsyncClient() as client:
        payloads = [p async for p in stream_sse(client, upstream, b'{"model": "adapter-stream", "stream": true}')]

    assert len(payloads) == 3
    assert all(p.startswith(b"{") for p in payloads)


async def test_error_status_keeps_status_and_body(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["adapter-429"] = Script(status=429)
    upstream = Provider(base_url=fake_upstream.base_url, api_key="k")
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamHTTPError) as caught:
            await forward(client, upstream, b'{"model": "adapter-429"}')

    assert caught.value.status_code == 429
    assert b"scripted failure" in caught.value.to_json()


async def test_connection_refused_is_unreachable() -> None:
    upstream = Provider(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="k")
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamUnreachable, match="Network error"):
            await forward(client, upstream, b"{}")


async def test_slow_upstream_times_out(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["adapter-slow"] = Script(chunks=2, delay=2)
    upstream = Provider(base_url=fake_upstream.base_url, api_key="k")
    async with httpx.AsyncClient(timeout=0.5) as client:
        with pytest.raises(UpstreamTimeout):
            _ = [p async for p in stream_sse(client, upstream, b'{"model": "adapter-slow", "stream": true}')]
