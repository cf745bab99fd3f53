"""Serving a process's Prometheus registry on a port of its own, with prometheus-client's HTTP server.

An API replica does it when ``BODHI_METRICS_PORT`` is set, a worker when ``BODHI_WORKER_METRICS_PORT`` is:
``GET http://host:port/metrics``, unauthenticated (the numbers name no secret and no user), from a thread of the
process. ``add_process_collectors`` gives a registry of its own what the default registry has: the process's CPU,
memory and file descriptors, the Python version, the garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

SCRAPE_REFRESH_TIMEOUT_S = 5.0
SHUTDOWN_WAIT_S = 5.0


def add_process_collectors(registry: CollectorRegistry) -> None:
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
    PlatformCollector(registry=registry)  # python_info
    GCCollector(registry=registry)  # python_gc_*


class RefreshedOnScrape(Collector):
    """``registry`` as a scrape from the server's thread sees it: ``refresh`` runs on the process's event loop
    first (for at most ``SCRAPE_REFRESH_TIMEOUT_S``; if it fails, the scrape gets the last values)."""

    def __init__(
        self, registry: CollectorRegistry, refresh: Callable[[], Awaitable[None]], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._registry, self._refresh, self._loop = registry, refresh, loop

    def _run_refresh(self) -> None:
        async def run() -> None:
            await self._refresh()

        try:
            future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        except RuntimeError:  # the loop has closed: the process is stopping
            return
        try:
            future.result(timeout=SCRAPE_REFRESH_TIMEOUT_S)
        except Exception as exc:  # Redis down or slow: the scrape still answers, with the last values
            future.cancel()
            log.debug("refreshing the metrics before a scrape failed: %r", exc)

    def collect(self) -> Iterable[Metric]:
        self._run_refresh()
        return self._registry.collect()

    def restricted_registry(self, names: Iterable[str]) -> Any:  # what prometheus-client calls for `?name[]=...`
        self._run_refresh()
        return self._registry.restricted_registry(names)


@contextlib.asynccontextmanager
async def serving_metrics(
    port: int | None,
    *,
    host: str,
    registry: CollectorRegistry,
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[None]:
    """Serve ``registry`` on ``host:port`` while the block runs (nothing when ``port`` is None); ``refresh``, if
    given, runs on this event loop before each scrape. A port that cannot be bound fails the start (OSError)."""
    if port is None:
        yield
        return
    served: Collector = registry
    if refresh is not None:
        served = RefreshedOnScrape(registry, refresh, asyncio.get_running_loop())
    server, thread = start_http_server(port, addr=host, registry=served)
    log.info("metrics served on http://%s:%d/metrics", host, server.server_port)
    try:
        yield
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        await asyncio.to_thread(thread.join, SHUTDOWN_WAIT_S)
