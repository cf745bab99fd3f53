"""Prometheus metrics of one worker process, served on ``BODHI_WORKER_METRICS_PORT`` (off when unset).

Every worker counts its jobs (``bodhi_worker_jobs_started``, ``bodhi_worker_jobs_finished`` by outcome, and
``bodhi_worker_jobs_running``). A remote worker times its providers (``bodhi_worker_provider_first_byte_seconds``:
until the first chunk of a stream, or the whole answer otherwise; ``bodhi_worker_provider_seconds``: the whole
call) and counts their failures by kind (``bodhi_worker_provider_errors``: the error's code, or ``http_<status>``
for a status the provider answered). A local worker counts the tokens it generates and the seconds it spends
generating them, per alias (tokens per second = the rate of one over the rate of the other), and its loaded models
(``bodhi_worker_loaded_models``). Labels are an API model's name or a local alias, never a client's string.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import Field

from bodhi_shared.errors import BodhiError, UpstreamHTTPError
from bodhi_shared.metrics_server import add_process_collectors, serving_metrics
from bodhi_shared.settings import BodhiSettings

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class WorkerMetricsSettings(BodhiSettings):
    # Serve this worker's metrics on this port (GET /metrics, unauthenticated); unset: no server.
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"


class JobOutcome(StrEnum):
    OK = "ok"  # answered (DONE or RESPONSE)
    ERROR = "error"  # ended with an ERROR event: the provider's, the model's or a refused request
    FAILED = "failed"  # an unexpected exception in the worker (the client got an internal error)
    CANCELLED = "cancelled"  # its client left; nothing more was published
    STOPPED = "stopped"  # cut short by the worker's drain or the job's timeout
    SKIPPED = "skipped"  # taken after its client had stopped waiting: not run


def error_kind(exc: BaseException) -> str:
    """A bounded label for a failure: ``http_<status>`` for a provider's status, else the error's stable code."""
    if isinstance(exc, UpstreamHTTPError):
        return f"http_{exc.status_code}"
    if isinstance(exc, BodhiError):
        return exc.code or type(exc).__name__
    return type(exc).__name__


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        add_process_collectors(r)
        self.jobs_started = Counter("bodhi_worker_jobs_started", "Jobs started, by function", ["function"], registry=r)
        self.jobs_finished = Counter(
            "bodhi_worker_jobs_finished", "Jobs finished, by function and outcome", ["function", "outcome"], registry=r
        )
        self.jobs_running = Gauge("bodhi_worker_jobs_running", "Jobs running now", ["function"], registry=r)
        self.provider_first_byte = Histogram(
            "bodhi_worker_provider_first_byte_seconds",
            "Remote workers: from the call to a provider to its first chunk (a stream) or its answer, by API model",
            ["api_model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.provider_duration = Histogram(
            "bodhi_worker_provider_seconds",
            "Remote workers: a whole provider call, to the end of its answer, by API model",
            ["api_model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.provider_errors = Counter(
            "bodhi_worker_provider_errors",
            "Remote workers: failed provider calls by API model and kind (error code, or http_<status>)",
            ["api_model", "kind"],
            registry=r,
        )
        self.generated_tokens = Counter(
            "bodhi_worker_generated_tokens",
            "Local workers: completion tokens generated, by alias",
            ["alias"],
            registry=r,
        )
        self.generation_seconds = Counter(
            "bodhi_worker_generation_seconds",
            "Local workers: seconds spent generating (prompt and completion), by alias",
            ["alias"],
            registry=r,
        )
        self.loaded_models = Gauge("bodhi_worker_loaded_models", "Local workers: models loaded now", registry=r)

    @contextlib.contextmanager
    def job(self, function: str) -> Iterator[Callable[[JobOutcome], None]]:
        """Count one job: started now, finished with the outcome last reported through the yielded callable
        (``failed`` when the block raises without one, ``stopped`` when it is cancelled)."""
        outcome: list[JobOutcome] = []
        self.jobs_started.labels(function).inc()
        running = self.jobs_running.labels(function)
        running.inc()
        try:
            yield outcome.append
        except BaseException as exc:
            if not outcome:
                outcome.append(JobOutcome.FAILED if isinstance(exc, Exception) else JobOutcome.STOPPED)
            raise
        finally:
            running.dec()
            self.jobs_finished.labels(function, (outcome[-1] if outcome else JobOutcome.OK).value).inc()

    def provider_call(self, api_model: str) -> ProviderCall:
        return ProviderCall(self, api_model or "unknown")


class ProviderCall:
    """Times one provider call: ``first_byte()`` when its answer starts, ``failed(exc)`` or ``done()`` at the end."""

    def __init__(self, metrics: WorkerMetrics, api_model: str) -> None:
        self._metrics, self._api_model = metrics, api_model
        self._started = time.perf_counter()
        self._first: float | None = None

    def first_byte(self) -> None:
        if self._first is None:
            self._first = time.perf_counter()
            self._metrics.provider_first_byte.labels(self._api_model).observe(self._first - self._started)

    def done(self) -> None:
        self.first_byte()
        self._metrics.provider_duration.labels(self._api_model).observe(time.perf_counter() - self._started)

    def failed(self, exc: BaseException) -> None:
        self._metrics.provider_errors.labels(self._api_model, error_kind(exc)).inc()


@contextlib.asynccontextmanager
async def serving_worker_metrics(settings: WorkerMetricsSettings, metrics: WorkerMetrics) -> AsyncIterator[None]:
    async with serving_metrics(
        settings.worker_metrics_port, host=settings.worker_metrics_host, registry=metrics.registry
    ):
        yield
