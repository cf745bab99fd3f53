"""Prometheus metrics of one API replica (``GET /metrics``), on a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "bodhi_requests", "Inference requests by model and outcome", ["model", "status"], registry=r
        )
        self.ttft = Histogram(
            "bodhi_time_to_first_token_seconds", "Time to first token", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.duration = Histogram(
            "bodhi_request_duration_seconds", "Request duration", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.tokens = Counter(
            "bodhi_tokens",
            "Tokens by model and direction (in: prompt, out: completion)",
            ["model", "direction"],
            registry=r,
        )
        self.active_streams = Gauge("bodhi_active_streams", "Streams being relayed now", registry=r)
        self.queue_depth = Gauge("bodhi_queue_depth", "Jobs waiting per queue", ["queue"], registry=r)
        self.workers = Gauge("bodhi_workers", "Workers seen recently, by kind", ["kind"], registry=r)
