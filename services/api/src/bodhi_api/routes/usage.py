"""``GET /bodhi/v1/usage`` (token usage, aggregated) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from bodhi_api.auth.principal import AnyUser
from bodhi_api.auth.roles import Role
from bodhi_api.deps import ResourcesDep
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND, REMOTE_WORKER_KIND

router = APIRouter(tags=["usage"])

# Grouping columns as a lookup: only these strings ever reach the SQL text.
GROUP_COLUMNS = {"model": "model", "user": "user_id::text", "api_model": "api_model_id::text"}


@router.get("/bodhi/v1/usage")
async def usage_summary(
    principal: AnyUser,
    resources: ResourcesDep,
    group_by: Literal["model", "user", "api_model"] = "model",
    since: datetime | None = Query(default=None),  # noqa: B008
    until: datetime | None = Query(default=None),  # noqa: B008
) -> dict[str, Any]:
    """Totals per group; a user sees their own requests, a manager everyone's."""
    everyone = principal.user.role.at_least(Role.MANAGER)
    await resources.usage.flush()  # include what this replica has not written yet
    rows = await resources.db.fetch(
        f"SELECT {GROUP_COLUMNS[group_by]} AS key, count(*) AS requests,"  # noqa: S608 -- from GROUP_COLUMNS
        " coalesce(sum(prompt_tokens), 0) AS prompt_tokens, coalesce(sum(completion_tokens), 0) AS completion_tokens,"
        " coalesce(sum(total_tokens), 0) AS total_tokens, avg(ttft_ms) AS avg_ttft_ms,"
        " avg(duration_ms) AS avg_duration_ms, count(*) FILTER (WHERE status <> 'ok') AS failed"
        " FROM usage_records WHERE ($1::uuid IS NULL OR user_id = $1)"
        " AND ($2::timestamptz IS NULL OR created_at >= $2) AND ($3::timestamptz IS NULL OR created_at < $3)"
        " GROUP BY 1 ORDER BY 1",
        None if everyone else principal.user.id,
        since,
        until,
    )
    return {
        "group_by": group_by,
        "since": since,
        "until": until,
        "scope": "all" if everyone else "own",
        "data": [dict(r) for r in rows],
    }


@router.get("/metrics", response_model=None)
async def metrics(principal: AnyUser, resources: ResourcesDep) -> Response:
    m, keys, ttl = resources.metrics, resources.keys, resources.settings.heartbeat_ttl
    now = time.time()
    async with resources.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.remote_queue)
        for kind in (REMOTE_WORKER_KIND, LOCAL_WORKER_KIND):
            pipe.zcount(keys.workers(kind), now - ttl, "+inf")
        depth, remote, local = await pipe.execute()
    m.queue_depth.labels(keys.remote_queue).set(depth)
    m.workers.labels(REMOTE_WORKER_KIND).set(remote)
    m.workers.labels(LOCAL_WORKER_KIND).set(local)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
