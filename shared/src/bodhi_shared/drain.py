"""Graceful drain: how a worker stops without cutting the answers it is giving.

The first SIGTERM/SIGINT asks for a drain: take no more jobs, let the running ones finish for up to
``BODHI_DRAIN_TIMEOUT`` (``settings.DrainSettings``), then cancel the rest, each of which tells its client in-band
(``job_runner.run_inference_job``). A second signal cancels them at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Collection
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM as two events: ``drain`` at the first signal, ``now`` at the second."""

    def __init__(self, name: str) -> None:
        self.name = name  # the process, for the log
        self.drain = asyncio.Event()
        self.now = asyncio.Event()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.received, sig)

    def received(self, sig: signal.Signals) -> None:
        if not self.drain.is_set():
            log.info("%s: %s: draining (a second signal ends the running jobs at once)", self.name, sig.name)
            self.drain.set()
        elif not self.now.is_set():
            log.warning("%s: %s again: ending the running jobs now", self.name, sig.name)
            self.now.set()


async def finish_or_cancel(tasks: Collection[asyncio.Task[Any]], *, within: float, now: asyncio.Event) -> int:
    """Wait until ``tasks`` are done, ``within`` seconds have passed or ``now`` is set; cancel the ones still
    running and wait for them to end. Returns how many were cancelled."""
    running = {task for task in tasks if not task.done()}
    if running:
        log.info("waiting up to %.1f s for %d running job(s) to finish", within, len(running))
    hurry = asyncio.ensure_future(now.wait())
    deadline = time.monotonic() + within
    try:
        while running and not now.is_set() and (left := deadline - time.monotonic()) > 0:
            done, _ = await asyncio.wait(running | {hurry}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            running -= done
    finally:
        hurry.cancel()
    if running:
        log.warning("ending %d job(s) still running after the drain", len(running))
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return len(running)
