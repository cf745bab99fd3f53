"""Liveness (``/ping``) and readiness (``/health``: Postgres, Redis, the replica's subscription, workers seen
recently)."""

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from bodhi_api.deps import ResourcesDep
from bodhi_shared.heartbeat import live_workers
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND, REMOTE_WORKER_KIND

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 2.0


@router.get("/ping")
async def ping() -> dict[str, str]:
    return {"message": "pong"}


@router.get("/health")
async def health(resources: ResourcesDep) -> JSONResponse:
    postgres = await _check(resources.db.fetchval("SELECT 1"))
    redis = await _check(resources.redis.ping())
    workers: dict[str, Any] = {}
    if redis == "ok":
        ttl = resources.settings.heartbeat_ttl
        for kind in (REMOTE_WORKER_KIND, LOCAL_WORKER_KIND):
            workers[kind] = len(await live_workers(resources.redis, resources.keys, kind=kind, ttl=ttl))
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
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
