"""Fixtures of the API tests: fake providers of a test's own, a local alias served by a worker of a module's own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Gateway
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import BodhiProcess
from tests.support.tiny_gguf import write_tiny_llama_gguf


def started_upstream() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


@pytest.fixture
def provider() -> Iterator[FakeUpstream]:
    """A provider of this test's own, so its model list and key rules touch no other test."""
    yield from started_upstream()


@pytest.fixture
def attacker() -> Iterator[FakeUpstream]:
    """A second server of this test's own: whatever reaches it, a key included, is recorded."""
    yield from started_upstream()


@pytest.fixture(scope="module")
def tiny_alias(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local alias of the tiny generated GGUF, served by a local worker of this module's own."""
    folder = tmp_path_factory.mktemp("tiny-alias")
    path = write_tiny_llama_gguf(folder / "tiny.gguf").resolve()
    alias = f"tiny-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=gateway.base_url, headers=gateway.auth_headers, timeout=30) as http:
        created = http.post(
            "/bodhi/v1/models/alias",
            json={
                "alias": alias,
                "path": str(path),
                "context_params": {"n_ctx": 512},
                "request_params": {"max_tokens": 8},
            },
        )
        assert created.status_code == 201, created.text
        worker = BodhiProcess(["local-worker", "--models", alias], env=gateway.env, log_path=folder / "worker.log")
        try:
            deadline = time.monotonic() + 60
            chat = {"model": alias, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
            while (answered := http.post("/v1/chat/completions", json=chat)).status_code == 503:
                assert worker.popen.poll() is None, worker.log_text()
                assert time.monotonic() < deadline, worker.log_text()
                time.sleep(0.2)
            assert answered.status_code == 200, answered.text
            yield alias
        finally:
            worker.stop()
            http.delete(f"/bodhi/v1/models/alias/{alias}")


@pytest.fixture
def claude() -> Iterator[FakeAnthropic]:
    """An Anthropic provider of this test's own."""
    server = FakeAnthropic()
    server.start()
    yield server
    server.stop()
