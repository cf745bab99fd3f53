"""``/bodhi/v1/routers``: routers, model ids served by a list of targets (read: any user; write: manager and above).

A router's id is a served id (unique among API models' models and local aliases); requests to it are served by
``model_routers.routed_dispatch``. Every change drops the cached routes on every replica.
"""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter, Response

from bodhi_api.auth.principal import AnyUser, Manager
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotFound
from bodhi_api.model_routers.picking import cooling_down
from bodhi_api.model_routers.schemas import RouterCreate, RouterList, RouterPublic, RouterUpdate
from bodhi_api.model_routers.store import delete_router, get_router, list_routers, save_router
from bodhi_api.resources import Resources
from bodhi_api.served_ids import named_in_path

router = APIRouter(tags=["routers"])
BASE = "/bodhi/v1/routers"


@router.get(BASE, response_model=RouterList)
async def routers_list(principal: AnyUser, resources: ResourcesDep) -> RouterList:
    rows = await list_routers(resources.db)
    cooling = await cooling_down(resources.redis, resources.keys, sorted({t for r in rows for t in r["targets"]}))
    return RouterList(data=[_public(r, cooling) for r in rows])


@router.post(BASE, status_code=201, response_model=RouterPublic)
async def routers_create(body: RouterCreate, principal: Manager, resources: ResourcesDep) -> RouterPublic:
    await save_router(resources.db, body.model_id, body, create=True)
    await resources.routes_changed()
    return await _existing(resources, body.model_id)


@router.get(f"{BASE}/{{model_id:path}}", response_model=RouterPublic)
async def routers_get(model_id: str, principal: AnyUser, resources: ResourcesDep) -> RouterPublic:
    return await _existing(resources, model_id)


@router.put(f"{BASE}/{{model_id:path}}", response_model=RouterPublic)
async def routers_update(
    model_id: str, body: RouterUpdate, principal: Manager, resources: ResourcesDep
) -> RouterPublic:
    await _row(resources, model_id)  # 404 before the targets are checked
    if not await save_router(resources.db, model_id, body, create=False):
        raise NotFound(f"No router `{model_id}`.")
    await resources.routes_changed()
    return await _existing(resources, model_id)


@router.delete(f"{BASE}/{{model_id:path}}", status_code=204)
async def routers_delete(model_id: str, principal: Manager, resources: ResourcesDep) -> Response:
    if not await delete_router(resources.db, _named(model_id)):
        raise NotFound(f"No router `{model_id}`.")
    await resources.routes_changed()
    return Response(status_code=204)


def _public(row: asyncpg.Record, cooling: dict[str, float]) -> RouterPublic:
    return RouterPublic.of(row, {t: cooling[t] for t in row["targets"] if t in cooling})


def _named(model_id: str) -> str:
    return named_in_path(model_id, what="router", names="router ids")


async def _row(resources: Resources, model_id: str) -> asyncpg.Record:
    row = await get_router(resources.db, _named(model_id))
    if row is None:
        raise NotFound(f"No router `{model_id}`.")
    return row


async def _existing(resources: Resources, model_id: str) -> RouterPublic:
    """The router with the targets cooling down now (one Redis round trip)."""
    row = await _row(resources, model_id)
    return _public(row, await cooling_down(resources.redis, resources.keys, list(row["targets"])))
