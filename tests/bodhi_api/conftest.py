"""Fixtures of the API tests: fake providers of a test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_upstream import FakeUpstream


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
