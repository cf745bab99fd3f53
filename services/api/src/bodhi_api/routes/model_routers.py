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
    await _existing(resources, model_id)
    if not await save_router(resources.db, _named(model_id), body, create=False):
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
    """A router named in a path: Postgres refuses NUL (a 500), and no router id holds a control character."""
    if any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in model_id):
        raise NotFound("No router with that name: router ids hold no control characters.")
    return model_id


async def _existing(resources: Resources, model_id: str) -> RouterPublic:
    row = await get_router(resources.db, _named(model_id))
    if row is None:
        raise NotFound(f"No router `{model_id}`.")
    cooling = await cooling_down(resources.redis, resources.keys, list(row["targets"]))
    return RouterPublic.of(row, cooling)
