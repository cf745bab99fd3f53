"""What a budget has spent in its current UTC day or month, tokens and money, from the usage records in Postgres.

Shown beside a budget (the tokens and users lists); the limit itself is enforced from Redis (``auth.limits``),
whose count is charged from the same reported usage. A budget set during its period counts here from the
period's start, in Redis from when it was set.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

import asyncpg

from bodhi_api.prices import COST, PRICE_JOIN, UNPRICED_REQUESTS, UNPRICED_TOKENS, Cost
from bodhi_shared.rate_limits import BudgetPeriod, period_start

Subject = Literal["token_id", "user_id"]
_SUBJECTS: dict[Subject, str] = {"token_id": "u.token_id", "user_id": "u.user_id"}


def _query(subject: Subject) -> str:
    # One row per subject, each from the start of its own period; $3 (the tokens' owner) lets the
    # (user_id, created_at) index serve a token list.
    return (
        f"SELECT s.subject, coalesce(sum(u.total_tokens), 0) AS tokens, {COST} AS cost,"  # noqa: S608 -- constants
        f" {UNPRICED_REQUESTS} AS unpriced_requests, {UNPRICED_TOKENS} AS unpriced_tokens"
        " FROM unnest($1::uuid[], $2::timestamptz[]) AS s(subject, since)"
        f" JOIN usage_records u ON {_SUBJECTS[subject]} = s.subject AND u.created_at >= s.since"
        f" {PRICE_JOIN} WHERE ($3::uuid IS NULL OR u.user_id = $3) GROUP BY s.subject"
    )


async def spent_in_period(
    db: asyncpg.Pool,
    *,
    subject: Subject,
    periods: Mapping[uuid.UUID, BudgetPeriod],
    now: datetime,
    owner: uuid.UUID | None = None,
) -> dict[uuid.UUID, dict[str, object]]:
    """For each id in ``periods`` (tokens or users with a budget), what it spent since its period began: the
    period, its start, the tokens and the ``Cost``. No query when ``periods`` is empty."""
    if not periods:
        return {}
    starts = {subject_id: period_start(period, now) for subject_id, period in periods.items()}
    rows = await db.fetch(_query(subject), list(starts), list(starts.values()), owner)
    found = {row["subject"]: row for row in rows}
    spent: dict[uuid.UUID, dict[str, object]] = {}
    for subject_id, since in starts.items():
        row = found.get(subject_id)
        cost = Cost.from_row(row) if row is not None else Cost(None, 0, 0)
        tokens = row["tokens"] if row is not None else 0
        spent[subject_id] = {"period": periods[subject_id], "since": since.isoformat(), "tokens": tokens}
        spent[subject_id] |= cost.public()
    return spent
