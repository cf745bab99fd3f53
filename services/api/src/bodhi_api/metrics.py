"""Prometheus metrics of one API replica, on a registry of its own, with the process's own (CPU, memory, GC).

``GET /metrics`` serves them (to any user, or to anyone with ``BODHI_METRICS_PUBLIC=true``), and so does, when
``BODHI_METRICS_PORT`` is set, prometheus-client's own HTTP server in a thread of the replica
(``metrics_server.serving_metrics``), unauthenticated, for a scraper that holds no token. Either way the queue
depth, worker counts and local slots are read from Redis at scrape time (``Metrics.observe_backends``).

Labels stay bounded: ``model`` is a served model id (a request for an unknown model counts as ``unknown``),
``api_model`` the API model's name or the local alias, ``route`` a route template, ``code`` an HTTP status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bodhi_shared.heartbeat import live_slots
from bodhi_shared.metrics_server import add_process_collectors
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND, REMOTE_WORKER_KIND

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bodhi_shared.redis_keys import RedisKeys

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
UNKNOWN = "unknown"  # the model label of a request whose model is not served here


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        add_process_collectors(r)
        self.http_requests = Counter(
            "bodhi_http_requests",
            "HTTP requests by method, route template and status code",
            ["method", "route", "code"],
            registry=r,
        )
        self.http_duration = Histogram(
            "bodhi_http_request_duration_seconds",
            "HTTP request duration, to the end of the response (a stream's end), by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "bodhi_requests",
            "Inference requests by served model, API model (or local alias), outcome and status code",
            ["model", "api_model", "status", "code"],
            registry=r,
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
        self.local_slots = Gauge(
            "bodhi_local_slots",
            "Local workers' slots (requests run at once), by state: in_use, free",
            ["state"],
            registry=r,
        )

    async def observe_backends(self, redis: Redis, keys: RedisKeys, *, heartbeat_ttl: float, now: float) -> None:
        """Read the remote queue's depth and the live workers of each kind into their gauges."""
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.remote_queue)
            for kind in (REMOTE_WORKER_KIND, LOCAL_WORKER_KIND):
                pipe.zcount(keys.workers(kind), now - heartbeat_ttl, "+inf")
            depth, remote, local = await pipe.execute()
        self.queue_depth.labels(keys.remote_queue).set(depth)
        self.workers.labels(REMOTE_WORKER_KIND).set(remote)
        self.workers.labels(LOCAL_WORKER_KIND).set(local)
        for state, count in (await live_slots(redis, keys, kind=LOCAL_WORKER_KIND, ttl=heartbeat_ttl)).items():
            self.local_slots.labels(state).set(count)
