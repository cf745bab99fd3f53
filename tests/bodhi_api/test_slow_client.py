"""A client that does not keep up with its stream is cut off by the bytes buffered for it, not their number.

A few thousand large chunks are far under any event limit but hundreds of MiB: the API's memory must stay
bounded by ``BODHI_STREAM_BUFFER_BYTES`` (16 MiB by default) while its client reads nothing, and the client,
once it reads, gets the in-band ``client_too_slow`` error instead of the whole answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from bodhi_api.stream_hub import DEFAULT_BUFFER_BYTES
from tests.conftest import RegisterUpstream, StartGateway
from tests.support.fake_upstream import FakeUpstream, Script

CHUNK_BYTES = 64 * 1024
CHUNKS = 2048  # 128 MiB in all, 8 times the buffer's limit
MIB = 1024 * 1024
# The buffer's limit, plus what the process needs besides: messages being decoded, the socket's buffers.
RSS_GROWTH_LIMIT = DEFAULT_BUFFER_BYTES + 48 * MIB


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def test_a_client_that_does_not_read_is_cut_off_at_the_byte_limit(
    start_gateway: StartGateway, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    own = start_gateway()
    pid = own.api.popen.pid
    model = await register_upstream(Script(chunks=CHUNKS, text="x" * CHUNK_BYTES))
    small = await register_upstream(Script())
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=60) as http:
        warm = await http.post("/v1/chat/completions", json=body | {"model": small})
        assert warm.status_code == 200, warm.text
        baseline = peak = resident_bytes(pid)
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            # Read nothing while the provider sends it all (the worker reads it as fast as it comes).
            record = fake_upstream.requests_for(model)[-1]
            deadline = time.monotonic() + 40
            while record.finished_at is None and record.client_gone_at is None and time.monotonic() < deadline:
                peak = max(peak, resident_bytes(pid))
                await asyncio.sleep(0.05)
            assert record.finished_at is not None or record.client_gone_at is not None, "the provider never ended"
            for _ in range(40):  # the last events on their way through Redis
                peak = max(peak, resident_bytes(pid))
                await asyncio.sleep(0.05)
            lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]

    assert peak - baseline < RSS_GROWTH_LIMIT, f"the API grew by {(peak - baseline) / MIB:.0f} MiB"
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2].removeprefix("data: "))["error"]
    assert error["code"] == "client_too_slow", error
    received = sum(len(line) for line in lines[:-2])
    assert received < CHUNKS * CHUNK_BYTES / 2, "the client got most of the answer: it was not cut off"
