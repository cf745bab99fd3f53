"""Routers in Postgres, and the ``served_models`` row that makes each router's id unique among served ids."""

from __future__ import annotations

import asyncpg

from bodhi_api.model_routers.schemas import RouterUpdate
from bodhi_api.served_ids import lock_served_ids, refuse_clash
from bodhi_shared.errors import InvalidRequest

_COLUMNS = "model_id, strategy, targets, cooldown_s, created_at, updated_at"


async def list_routers(db: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await db.fetch(f"SELECT {_COLUMNS} FROM routers ORDER BY lower(model_id), model_id"))  # noqa: S608


async def get_router(db: asyncpg.Pool, model_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM routers WHERE model_id = $1",  # noqa: S608 -- a constant column list
        model_id,
    )
    return row


async def save_router(db: asyncpg.Pool, model_id: str, fields: RouterUpdate, *, create: bool) -> bool:
    """Insert (``create``) or update a router and claim its served id; False when updating a missing one.

    409 when the id is served already; 400 when a target is not a served id, or is a router itself (a router of
    routers could loop, and would make one request's cost hard to see)."""
    async with db.acquire() as conn, conn.transaction():
        await lock_served_ids(conn)
        if create:
            await refuse_clash(conn, [model_id], param="model_id")
        await _check_targets(conn, model_id, fields.targets)
        values = (model_id, fields.strategy, fields.targets, fields.cooldown_s)
        if create:
            await conn.execute(
                "INSERT INTO routers (model_id, strategy, targets, cooldown_s) VALUES ($1, $2, $3, $4)", *values
            )
            await conn.execute("INSERT INTO served_models (model_id, router) VALUES ($1, $1)", model_id)
            return True
        result = await conn.execute(
            "UPDATE routers SET strategy = $2, targets = $3, cooldown_s = $4, updated_at = now() WHERE model_id = $1",
            *values,
        )
        return bool(result.endswith(" 1"))


async def _check_targets(conn: asyncpg.Connection, model_id: str, targets: list[str]) -> None:
    rows = await conn.fetch("SELECT model_id, router FROM served_models WHERE model_id = ANY($1::text[])", targets)
    found = {r["model_id"]: r["router"] for r in rows}
    for index, target in enumerate(targets):
        if target == model_id:
            raise InvalidRequest(f"A router cannot be its own target (`{target}`).", param=f"targets.{index}")
        if target not in found:
            raise InvalidRequest(
                f"`{target}` is not a served model id. A target is an API model's model or a local alias: "
                "GET /v1/models lists them.",
                param=f"targets.{index}",
            )
        if found[target] is not None:
            raise InvalidRequest(
                f"`{target}` is a router; a router's targets are API models' models or local aliases, not routers.",
                param=f"targets.{index}",
            )


async def delete_router(db: asyncpg.Pool, model_id: str) -> bool:
    result: str = await db.execute("DELETE FROM routers WHERE model_id = $1", model_id)  # served id cascades
    return result.endswith(" 1")
