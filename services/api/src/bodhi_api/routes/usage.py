"""``GET /bodhi/v1/usage`` (token usage, aggregated) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from bodhi_api.auth.principal import AnyUser, authenticate
from bodhi_api.auth.roles import Role
from bodhi_api.deps import ResourcesDep

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


async def metrics_reader(request: Request, resources: ResourcesDep) -> None:
    """Any signed-in user (or token) may read ``/metrics``; anyone at all with ``BODHI_METRICS_PUBLIC=true``."""
    if not resources.settings.metrics_public:
        await authenticate(request, resources)  # every authenticated caller has at least the role `user`


@router.get("/metrics", response_model=None, dependencies=[Depends(metrics_reader)])
async def metrics(resources: ResourcesDep) -> Response:
    await resources.metrics.observe_backends(
        resources.redis, resources.keys, heartbeat_ttl=resources.settings.heartbeat_ttl, now=time.time()
    )
    return Response(generate_latest(resources.metrics.registry), media_type=CONTENT_TYPE_LATEST)
