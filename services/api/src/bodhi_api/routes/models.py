"""The unified model list: ``GET /bodhi/v1/models`` (with sources) and ``GET /v1/models`` (OpenAI shape), each
holding only the models the caller may use (``auth.grants``)."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter

from bodhi_api.auth.principal import AnyUser, Principal
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotFound

router = APIRouter(tags=["models"])


async def served_models(db: asyncpg.Pool) -> list[dict[str, Any]]:
    """Routers first, then local aliases, then API models grouped by API model, ids alphabetical within each."""
    rows = await db.fetch(
        "SELECT s.model_id, s.alias, s.router, a.id, a.name, a.api_format, a.base_url FROM served_models s"
        " LEFT JOIN api_models a ON a.id = s.api_model_id"
        " ORDER BY s.router IS NULL, s.alias IS NULL, lower(a.name), a.created_at, a.id, lower(s.model_id),"
        " s.model_id"
    )
    return [
        {
            "id": r["model_id"],
            "source": "router" if r["router"] is not None else "local" if r["alias"] is not None else "api",
            "api_model_id": str(r["id"]) if r["id"] else None,
            "api_model_name": r["name"],
            "api_format": r["api_format"],
            "base_url": r["base_url"],
        }
        for r in rows
    ]


async def allowed_models(db: asyncpg.Pool, principal: Principal) -> list[dict[str, Any]]:
    """``served_models`` less those the caller's grant leaves out."""
    entries = await served_models(db)
    grant = principal.grant
    return entries if grant.unlimited else [e for e in entries if grant.allows(e["id"])]


def openai_model(entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry["id"], "object": "model", "created": 0, "owned_by": entry.get("api_model_name") or "bodhi"}


@router.get("/bodhi/v1/models")
async def unified_models(principal: AnyUser, resources: ResourcesDep) -> dict[str, Any]:
    return {"data": await allowed_models(resources.db, principal)}


@router.get("/v1/models")
async def openai_models(principal: AnyUser, resources: ResourcesDep) -> dict[str, Any]:
    return {"object": "list", "data": [openai_model(e) for e in await allowed_models(resources.db, principal)]}


@router.get("/v1/models/{model_id:path}")
async def openai_model_get(model_id: str, principal: AnyUser, resources: ResourcesDep) -> dict[str, Any]:
    principal.grant.check(model_id)  # 403 model_not_allowed, whether it exists or not
    for entry in await served_models(resources.db):
        if entry["id"] == model_id:
            return openai_model(entry)
    raise NotFound(f"The model `{model_id}` does not exist or you do not have access to it.", code="model_not_found")
