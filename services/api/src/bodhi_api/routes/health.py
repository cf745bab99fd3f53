"""Liveness (``/ping``), the detailed report (``/health``: Postgres, Redis, the replica's subscription, workers seen
recently) and the readiness probe (``/ready``: 200 only when this replica can answer an inference request now).

``/health`` is 200 while Postgres, Redis and the subscription are up, whatever the workers: it says how many there
are, and the local workers' slots in use and free (the requests they can run at once: ``heartbeat.live_slots``).
``/ready`` also needs at least one live worker (of any kind), so a load balancer or Kubernetes sends no traffic
to a replica whose requests would all wait for a worker and end in 503.
"""

import asyncio
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bodhi_api.deps import ResourcesDep
from bodhi_api.resources import Resources
from bodhi_shared.heartbeat import has_live_member, live_slots, live_workers
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND, REMOTE_WORKER_KIND

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 2.0
# A probe's answer describes this instant: no cache (the proxy's, the client's) may answer it later.
NO_STORE = {"Cache-Control": "no-store"}


class ReadyReport(BaseModel):
    """What ``GET /ready`` answers: each check, ``ok`` or why not, and the names of those that failed."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(description="postgres, redis, listener, workers: `ok`, or what is wrong")
    failed: list[str] = Field(description="The checks that are not `ok`; empty when ready.")


@router.get("/ping")
async def ping() -> dict[str, str]:
    return {"message": "pong"}


@router.get("/health")
async def health(resources: ResourcesDep) -> JSONResponse:
    postgres = await _check(resources.db.fetchval("SELECT 1"))
    redis = await _check(resources.redis.ping())
    workers: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    if redis == "ok":
        ttl = resources.settings.heartbeat_ttl
        for kind in (REMOTE_WORKER_KIND, LOCAL_WORKER_KIND):
            workers[kind] = len(await live_workers(resources.redis, resources.keys, kind=kind, ttl=ttl))
        slots[LOCAL_WORKER_KIND] = await live_slots(resources.redis, resources.keys, kind=LOCAL_WORKER_KIND, ttl=ttl)
    # The replica's pub/sub subscription: while it is down no answer reaches this replica's clients.
    listener = resources.hub.listener
    listeners = {listener.name: listener.state} if listener is not None else {}
    healthy = postgres == "ok" and redis == "ok" and all(state == "up" for state in listeners.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "postgres": postgres,
        "redis": redis,
        "listeners": listeners,
        "workers": workers,
        "slots": slots,
    }
    return JSONResponse(body, status_code=200 if healthy else 503, headers=NO_STORE)


@router.get(
    "/ready",
    response_model=ReadyReport,
    responses={503: {"model": ReadyReport, "description": "Not ready: `failed` names the checks that are not ok."}},
)
async def ready(resources: ResourcesDep) -> JSONResponse:
    checks = {
        "postgres": await _check(resources.db.fetchval("SELECT 1")),
        "redis": await _check(resources.redis.ping()),
    }
    listener = resources.hub.listener
    checks["listener"] = "ok" if listener is not None and listener.state == "up" else "down"
    checks["workers"] = await _live_workers(resources) if checks["redis"] == "ok" else "unknown: no redis"
    failed = [name for name, result in checks.items() if result != "ok"]
    report = ReadyReport(status="not_ready" if failed else "ready", checks=checks, failed=failed)
    return JSONResponse(report.model_dump(), status_code=503 if failed else 200, headers=NO_STORE)


async def _live_workers(resources: Resources) -> str:
    """``ok`` when a worker of some kind beat within the TTL (one that serves any local alias counts too)."""
    ttl = resources.settings.heartbeat_ttl
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            for kind in (REMOTE_WORKER_KIND, LOCAL_WORKER_KIND):
                if await has_live_member(resources.redis, resources.keys.workers(kind), ttl=ttl):
                    return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "none live"


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
