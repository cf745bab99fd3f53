"""API models in Postgres, and the ``served_models`` rows that make every served id unique and routable."""

from __future__ import annotations

import uuid

import asyncpg

from bodhi_api.api_models.schemas import ApiModelFields
from bodhi_api.http_errors import Conflict
from bodhi_api.served_ids import lock_served_ids, refuse_clash
from bodhi_shared.errors import InvalidRequest

KEY_FOR_NEW_URL = (
    "A new `base_url` needs its `api_key` too: the stored key is sealed for the old URL and is never sent "
    "anywhere else. Enter the key for {url}."
)

_COLUMNS = (
    "id, name, api_format, base_url, prefix, models, extra_headers, sealed_key, key_hint, created_by, created_at,"
    " updated_at"
)


async def list_api_models(db: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await db.fetch(f"SELECT {_COLUMNS} FROM api_models ORDER BY lower(name), created_at"))  # noqa: S608


async def get_api_model(db: asyncpg.Pool, api_model_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM api_models WHERE id = $1",  # noqa: S608 -- a constant column list
        api_model_id,
    )
    return row


async def create_api_model(
    db: asyncpg.Pool,
    *,
    api_model_id: uuid.UUID,
    fields: ApiModelFields,
    sealed_key: bytes,
    key_hint: str,
    created_by: uuid.UUID,
) -> asyncpg.Record:
    async with db.acquire() as conn, conn.transaction():
        await _check_and_lock(conn, api_model_id, fields)
        await conn.execute(
            "INSERT INTO api_models"
            " (id, name, api_format, base_url, prefix, models, sealed_key, key_hint, created_by, extra_headers)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            api_model_id,
            fields.display_name(),
            fields.api_format,
            fields.base_url,
            fields.prefix,
            fields.models,
            sealed_key,
            key_hint,
            created_by,
            fields.extra_headers,
        )
        await _claim_served_ids(conn, api_model_id, fields)
    row = await get_api_model(db, api_model_id)
    assert row is not None
    return row


async def update_api_model(
    db: asyncpg.Pool,
    *,
    api_model_id: uuid.UUID,
    fields: ApiModelFields,
    sealed_key: bytes | None,
    key_hint: str | None,
) -> asyncpg.Record | None:
    """Replace everything but the key, which changes only when a new one is given; a new base URL needs one
    (the stored key is sealed for the old URL). Checked under the row's lock, so no concurrent edit slips by."""
    async with db.acquire() as conn, conn.transaction():
        stored_url = await conn.fetchval("SELECT base_url FROM api_models WHERE id = $1 FOR UPDATE", api_model_id)
        if stored_url is None:
            return None
        if sealed_key is None and stored_url != fields.base_url:
            raise InvalidRequest(KEY_FOR_NEW_URL.format(url=fields.base_url), param="api_key")
        await _check_and_lock(conn, api_model_id, fields)
        await conn.execute(
            "UPDATE api_models SET name = $2, api_format = $3, base_url = $4, prefix = $5, models = $6,"
            " sealed_key = COALESCE($7, sealed_key), key_hint = COALESCE($8, key_hint), extra_headers = $9,"
            " updated_at = now() WHERE id = $1",
            api_model_id,
            fields.display_name(),
            fields.api_format,
            fields.base_url,
            fields.prefix,
            fields.models,
            sealed_key,
            key_hint,
            fields.extra_headers,
        )
        await _claim_served_ids(conn, api_model_id, fields)
    return await get_api_model(db, api_model_id)


async def delete_api_model(db: asyncpg.Pool, api_model_id: uuid.UUID) -> bool:
    """Delete the row, its sealed key and (by cascade) its served ids."""
    result: str = await db.execute("DELETE FROM api_models WHERE id = $1", api_model_id)
    return result.endswith(" 1")


async def _check_and_lock(conn: asyncpg.Connection, api_model_id: uuid.UUID, fields: ApiModelFields) -> None:
    await lock_served_ids(conn)
    if fields.prefix is not None:
        other = await conn.fetchrow(
            "SELECT id, name FROM api_models WHERE prefix = $1 AND id <> $2", fields.prefix, api_model_id
        )
        if other is not None:
            raise Conflict(
                f"The prefix `{fields.prefix}` is already used by API model `{other['name']}` ({other['id']}).",
                param="prefix",
            )
    await refuse_clash(conn, fields.served_ids(), api_model_id=api_model_id)


async def _claim_served_ids(conn: asyncpg.Connection, api_model_id: uuid.UUID, fields: ApiModelFields) -> None:
    await conn.execute("DELETE FROM served_models WHERE api_model_id = $1", api_model_id)
    await conn.executemany(
        "INSERT INTO served_models (model_id, api_model_id, upstream_model) VALUES ($1, $2, $3)",
        [(served, api_model_id, model) for served, model in zip(fields.served_ids(), fields.models, strict=True)],
    )
