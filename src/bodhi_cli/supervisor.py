"""Runs the gateway's parts as child processes, restarts one that dies, and stops them together.

A child that exits, for whatever reason, is logged and started again after a backoff (``RESTART_FIRST_S``,
doubling up to ``RESTART_MAX_S``; back to the first once it had run ``STEADY_AFTER_S``). Only SIGINT/SIGTERM
(or SIGHUP) of the supervisor itself stops everything: each child gets one SIGTERM and drains
(``BODHI_DRAIN_TIMEOUT``), and is killed if it is still there ``STOP_MARGIN_S`` later. A second signal is passed
on, which ends the children's drains at once.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
STEADY_AFTER_S = 30.0  # a child that ran this long before it exited is restarted after RESTART_FIRST_S again
STOP_MARGIN_S = 5.0  # past the drain timeout, before a child that has not stopped is killed
POLL_S = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def bodhi_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bodhi_cli.main", *args]


@dataclass
class Child:
    """One supervised part: its command, the process running it now, and when to start it again."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = RESTART_FIRST_S
    restart_at: float | None = None  # set while it waits to be started again
    starts: int = 0

    def start(self, env: Mapping[str, str]) -> None:
        # A process group of its own: a Ctrl-C in the terminal reaches the supervisor only, which passes one
        # SIGTERM on; the children would otherwise get SIGINT and then SIGTERM, a second signal that skips the drain.
        self.process = subprocess.Popen(self.command, env=dict(env), process_group=0)
        self.started_at, self.restart_at = time.monotonic(), None
        self.starts += 1
        if self.starts > 1:
            log.warning("%s restarted (pid %d)", self.name, self.process.pid)

    def check(self, env: Mapping[str, str]) -> None:
        """Start it again if it exited and its backoff has passed."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start(env)
            return
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return
        ran_s = now - self.started_at
        if ran_s >= STEADY_AFTER_S:
            self.backoff_s = RESTART_FIRST_S
        log.error("%s exited (code %s) after %.1f s; restarting it in %.1f s", self.name, code, ran_s, self.backoff_s)
        self.restart_at = now + self.backoff_s
        self.backoff_s = min(RESTART_MAX_S, self.backoff_s * 2)

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)


def run_children(commands: Mapping[str, Sequence[str]], *, env: Mapping[str, str], drain_timeout: float) -> int:
    """Start one child per command and keep them running until SIGINT/SIGTERM; then stop all and return 0."""
    stop_requested: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signum)

    # The handlers stay installed after the children stop: a later Ctrl-C must not interrupt the caller while it
    # saves and stops the embedded Redis and Postgres.
    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    children = [Child(name, list(command)) for name, command in commands.items()]
    try:
        for child in children:
            child.start(env)
        while not stop_requested:
            for child in children:
                child.check(env)
            time.sleep(POLL_S)
    finally:
        stop_children(children, drain_timeout=drain_timeout, signals=stop_requested)
    return 0


def stop_children(children: Sequence[Child], *, drain_timeout: float, signals: list[int]) -> None:
    """SIGTERM each child, wait for them to drain, pass a second signal on, kill what is left after the margin."""
    log.info("stopping: each part may finish its work in flight for up to %.0f s", drain_timeout)
    for child in children:
        child.signal(signal.SIGTERM)
    passed_on = len(signals)
    deadline = time.monotonic() + drain_timeout + STOP_MARGIN_S
    while time.monotonic() < deadline and any(c.process is not None and c.process.poll() is None for c in children):
        if len(signals) > passed_on:
            passed_on = len(signals)
            log.warning("signal again: ending the children's work in flight now")
            for child in children:
                child.signal(signal.SIGTERM)
        time.sleep(POLL_S)
    for child in children:
        if child.process is not None and child.process.poll() is None:
            log.warning("%s did not stop within %.0f s; killing it", child.name, drain_timeout + STOP_MARGIN_S)
            child.process.kill()
            child.process.wait()
