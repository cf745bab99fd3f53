"""The one rule across API models, local aliases and routers: every served model id is unique.

``served_models`` enforces it with its primary key; this module finds the clash first, so the client gets a
409 that names the id and who already serves it instead of a constraint error.
"""

from __future__ import annotations

import uuid

import asyncpg

from bodhi_api.http_errors import Conflict, NotFound

# Serialises saves of API models and aliases so the clash check and the claim see the same table.
SAVE_LOCK_ID = 0x0B0D43


async def lock_served_ids(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SAVE_LOCK_ID)


async def refuse_clash(
    conn: asyncpg.Connection,
    ids: list[str],
    *,
    api_model_id: uuid.UUID | None = None,
    param: str = "models",
) -> None:
    """409 if any of ``ids`` is served by anything but the API model ``api_model_id`` (the one being saved, whose
    own ids are no clash). An alias or a router is checked only as it is created: its id never changes."""
    clash = await conn.fetchrow(
        "SELECT s.model_id, s.alias, s.router, a.id AS api_model_id, a.name FROM served_models s"
        " LEFT JOIN api_models a ON a.id = s.api_model_id"
        " WHERE s.model_id = ANY($1::text[])"
        " AND (s.api_model_id IS NULL OR s.api_model_id IS DISTINCT FROM $2)"
        " ORDER BY s.model_id LIMIT 1",
        ids,
        api_model_id,
    )
    if clash is None:
        return
    if clash["alias"] is not None:
        owner = f"the local alias `{clash['alias']}`"
    elif clash["router"] is not None:
        owner = f"the router `{clash['router']}`"
    else:
        owner = f"API model `{clash['name']}` ({clash['api_model_id']})"
    raise Conflict(
        f"The model id `{clash['model_id']}` is already served by {owner}. "
        "Choose another name, or a prefix that makes the ids unique.",
        param=param,
    )


def named_in_path(name: str, *, what: str, names: str) -> str:
    """A served id (``what``: `local alias`, `router`) named in a URL path, as it is; 404 if it holds a control
    character or a lone surrogate: no served id does, and Postgres would refuse NUL (a 500)."""
    if any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise NotFound(f"No {what} with that name: {names} hold no control characters.")
    return name
