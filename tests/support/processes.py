"""Running Bodhi's own commands as real processes, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx


def bodhi(*args: str) -> list[str]:
    return [sys.executable, "-m", "bodhi_cli.main", *args]


class BodhiProcess:
    """A ``bodhi ...`` child process whose output goes to a log file."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            bodhi(*args), env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 10) -> None:
        """Wait until the process has logged ``text``: the event itself, instead of a sleep that hopes for it."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log_text()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()


def wait_until_serving(base_url: str, process: BodhiProcess, *, timeout: float = 30) -> None:
    """Poll ``GET /ping`` until it answers; fail early, with the log, if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"process exited with {process.popen.returncode}:\n{process.log_text()}")
        try:
            if httpx.get(f"{base_url}/ping", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base_url} did not answer within {timeout} s:\n{process.log_text()}")


def wait_for_workers(base_url: str, *, kind: str = "remote", count: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(f"{base_url}/health", timeout=2).json()
        if health.get("workers", {}).get(kind, 0) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"fewer than {count} {kind} worker(s) seen at {base_url}/health")


def run_bodhi(*args: str, env: Mapping[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run a short ``bodhi`` command to completion; raise with its output if it fails."""
    done = subprocess.run(
        bodhi(*args), env={**os.environ, **env}, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bodhi {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def create_user_and_token(
    env: Mapping[str, str], *, username: str, password: str, role: str = "admin", scope: str = "power_user"
) -> str:
    """Create a user and an API token for it with the CLI; return the token."""
    run_bodhi("users", "create", username, "--role", role, "--password-stdin", env=env, stdin=password + "\n")
    created = run_bodhi("tokens", "create", "--user", username, "--scope", scope, env=env)
    return created.stdout.strip().splitlines()[-1]
