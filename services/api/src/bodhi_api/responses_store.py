"""Stored Responses (``store``, on by default as in OpenAI's API): what ``previous_response_id`` and
``GET /v1/responses/{id}`` read.

A row keeps the final Response object, the input it answered (as sent, after its own ``previous_response_id`` was
expanded) and who asked; it lives ``BODHI_RESPONSES_RETENTION_DAYS``. Expired rows are never read, and are deleted
lazily: each save deletes a few of them (``EXPIRED_BATCH``), and reading an expired one deletes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

EXPIRED_BATCH = 100


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    user_id: uuid.UUID
    model: str
    input_items: list[dict[str, Any]]
    response: dict[str, Any]
    created_at: datetime
    expires_at: datetime


_COLUMNS = ("id", "user_id", "model", "input_items", "response", "created_at", "expires_at")
_SELECT = (
    "SELECT id, user_id, model, input_items, response, created_at, expires_at, expires_at <= now() AS expired"
    " FROM responses WHERE id = $1"
)


async def save_response(
    db: asyncpg.Pool,
    *,
    user_id: uuid.UUID,
    model: str,
    input_items: list[dict[str, Any]],
    response: dict[str, Any],
    retention: timedelta,
) -> None:
    """Store ``response`` under its own ``id`` (a second save of one id changes nothing)."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO responses (id, user_id, model, input_items, response, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, now() + $6::interval) ON CONFLICT (id) DO NOTHING",
            str(response["id"]),
            user_id,
            model,
            input_items,
            response,
            retention,
        )
        await conn.execute(
            "DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE expires_at <= now() LIMIT $1)",
            EXPIRED_BATCH,
        )


async def find_response(db: asyncpg.Pool, response_id: str, *, user_id: uuid.UUID) -> StoredResponse | None:
    """The caller's stored response ``response_id``; None if it is someone else's, expired or unknown."""
    row = await db.fetchrow(_SELECT, response_id)
    if row is None or row["user_id"] != user_id:
        return None
    if row["expired"]:
        await db.execute("DELETE FROM responses WHERE id = $1 AND expires_at <= now()", response_id)
        return None
    return StoredResponse(**{name: row[name] for name in _COLUMNS})


async def delete_response(db: asyncpg.Pool, response_id: str, *, user_id: uuid.UUID) -> bool:
    """Delete the caller's stored response; False if there was none to delete (expired ones included)."""
    deleted = await db.fetchval(
        "WITH gone AS (DELETE FROM responses WHERE id = $1 AND user_id = $2 RETURNING expires_at)"
        " SELECT count(*) FROM gone WHERE expires_at > now()",
        response_id,
        user_id,
    )
    return bool(deleted)
