"""Runs the gateway's parts as child processes and stops them together."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0


def bodhi_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bodhi_cli.main", *args]


def run_children(commands: Mapping[str, Sequence[str]], *, env: Mapping[str, str]) -> int:
    """Start one child per command; return when a signal arrives or any child exits, after stopping all."""
    children = {name: subprocess.Popen(list(cmd), env=dict(env)) for name, cmd in commands.items()}
    stop_requested: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signum)

    # The handlers stay installed after the children stop: a second Ctrl-C must not interrupt the caller
    # while it saves and stops the embedded Redis and Postgres.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    exit_code = 0
    try:
        while not stop_requested:
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    log.error("%s exited with code %s; stopping the others", name, code)
                    exit_code = code or 1
                    stop_requested.append(0)
                    break
            time.sleep(0.2)
    finally:
        stop_children(children)
    return exit_code


def stop_children(children: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", name, STOP_GRACE_S)
            child.kill()
            child.wait()
