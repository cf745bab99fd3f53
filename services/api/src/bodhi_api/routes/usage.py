"""``GET /bodhi/v1/usage`` (token usage, aggregated) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BeforeValidator
from starlette.responses import Response

from bodhi_api.auth.principal import AnyUser, authenticate
from bodhi_api.auth.roles import Role
from bodhi_api.deps import ResourcesDep
from bodhi_api.prices import COST, CURRENCY, PRICED, UNPRICED_REQUESTS, UNPRICED_TOKENS, Cost
from bodhi_shared.clean_text import CleanLine

router = APIRouter(tags=["usage"])


def _not_a_number(value: Any) -> Any:
    """pydantic reads a number as a Unix time; the document says RFC 3339, so a number is refused."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("must be a date and time in RFC 3339 (like 2026-12-01T00:00:00Z), not a number")
    return value


Moment = Annotated[datetime, BeforeValidator(_not_a_number)]


@dataclass(frozen=True, slots=True)
class Group:
    """How usage is grouped: the SQL of the group's key over ``usage_records u``, of its display name (NULL: the
    key is its name) and the join that name needs."""

    key: str
    name: str = "NULL::text"
    join: str = ""


# Grouping columns as a lookup: only these strings ever reach the SQL text. A group here needs its name in GroupBy.
GROUP_COLUMNS: dict[str, Group] = {
    "model": Group("u.model"),
    "user": Group("u.user_id::text", "g.username", " LEFT JOIN users g ON g.id = u.user_id"),
    "api_model": Group("u.api_model_id::text", "g.name", " LEFT JOIN api_models g ON g.id = u.api_model_id"),
    "token": Group("u.token_id::text", "g.name", " LEFT JOIN api_tokens g ON g.id = u.token_id"),
    # the served id that answered: a router's target, else the model asked for (with ``model=<router>``: per target)
    "target": Group("coalesce(u.target, u.model)"),
}
GroupBy = Literal["model", "user", "api_model", "token", "target"]


def usage_query(group: Group) -> str:
    return (
        f"SELECT {group.key} AS key, {group.name} AS name, count(*) AS requests,"  # noqa: S608 -- from GROUP_COLUMNS
        " coalesce(sum(u.prompt_tokens), 0) AS prompt_tokens,"
        " coalesce(sum(u.completion_tokens), 0) AS completion_tokens,"
        " coalesce(sum(u.total_tokens), 0) AS total_tokens, avg(u.ttft_ms) AS avg_ttft_ms,"
        " avg(u.duration_ms) AS avg_duration_ms, count(*) FILTER (WHERE u.status <> 'ok') AS failed,"
        f" {COST} AS cost, {UNPRICED_REQUESTS} AS unpriced_requests, {UNPRICED_TOKENS} AS unpriced_tokens"
        f" FROM {PRICED}{group.join} WHERE ($1::uuid IS NULL OR u.user_id = $1)"
        " AND ($2::timestamptz IS NULL OR u.created_at >= $2) AND ($3::timestamptz IS NULL OR u.created_at < $3)"
        " AND ($4::text IS NULL OR u.model = $4)"
        " GROUP BY 1, 2 ORDER BY 1"
    )


def usage_row(row: asyncpg.Record) -> dict[str, Any]:
    found = dict(row)
    return found | Cost.from_row(row).public()


@router.get("/bodhi/v1/usage")
async def usage_summary(
    principal: AnyUser,
    resources: ResourcesDep,
    *,
    group_by: GroupBy = "model",
    since: Moment | None = Query(default=None),  # noqa: B008
    until: Moment | None = Query(default=None),  # noqa: B008
    model: CleanLine | None = Query(  # noqa: B008
        default=None,
        description="Only the requests for this model id (a router's, with `group_by=target`: per target).",
    ),
) -> dict[str, Any]:
    """Totals per group; a user sees their own requests (and so their own tokens), a manager everyone's.

    ``cost`` is in US dollars at today's prices (``GET /bodhi/v1/prices``) of the group's priced records, null when
    none has a price; ``unpriced_requests`` and ``unpriced_tokens`` are what no price covered. ``name`` is a user's
    username, an API model's or a token's name (null for a model, or one deleted since)."""
    everyone = principal.user.role.at_least(Role.MANAGER)
    await resources.usage.flush()  # include what this replica has not written yet
    rows = await resources.db.fetch(
        usage_query(GROUP_COLUMNS[group_by]), None if everyone else principal.user.id, since, until, model
    )
    return {
        "group_by": group_by,
        "since": since,
        "until": until,
        "model": model,
        "scope": "all" if everyone else "own",
        "currency": CURRENCY,
        "data": [usage_row(r) for r in rows],
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
