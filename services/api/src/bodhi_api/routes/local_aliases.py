"""``/bodhi/v1/models/alias``: local aliases (read: any user; write: power_user and above)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from bodhi_api.auth.principal import AnyUser, PowerUser
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotFound
from bodhi_api.local_aliases.schemas import LocalAliasBody, public_alias, validate_alias
from bodhi_api.local_aliases.store import (
    add_discovered_aliases,
    delete_alias,
    get_alias,
    list_aliases,
    publish_catalogue,
    save_alias,
)
from bodhi_api.resources import Resources
from bodhi_shared.errors import InvalidRequest

router = APIRouter(tags=["local-aliases"])
BASE = "/bodhi/v1/models/alias"


def models_dir(resources: Resources) -> Any:
    return resources.settings.home / "models"


@router.get(BASE)
async def aliases_list(principal: AnyUser, resources: ResourcesDep) -> dict[str, list[dict[str, Any]]]:
    if await add_discovered_aliases(resources.db):
        await aliases_changed(resources)
    return {"data": [public_alias(r) for r in await list_aliases(resources.db)]}


@router.post(BASE, status_code=201)
async def aliases_create(body: LocalAliasBody, principal: PowerUser, resources: ResourcesDep) -> dict[str, Any]:
    fields = validate_alias(body, models_dir=models_dir(resources))
    await save_alias(resources.db, fields, create=True)
    await aliases_changed(resources)
    return public_alias(await _existing(resources, fields.alias))


@router.get(f"{BASE}/{{alias:path}}")
async def aliases_get(alias: str, principal: AnyUser, resources: ResourcesDep) -> dict[str, Any]:
    return public_alias(await _existing(resources, alias))


@router.put(f"{BASE}/{{alias:path}}")
async def aliases_update(
    alias: str, body: LocalAliasBody, principal: PowerUser, resources: ResourcesDep
) -> dict[str, Any]:
    if body.alias is not None and body.alias != alias:
        raise InvalidRequest("An alias cannot be renamed: create the new name and delete the old.", param="alias")
    await _existing(resources, alias)
    fields = validate_alias(body, alias=alias, models_dir=models_dir(resources))
    await save_alias(resources.db, fields, create=False)
    await aliases_changed(resources)
    return public_alias(await _existing(resources, alias))


@router.delete(f"{BASE}/{{alias:path}}", status_code=204)
async def aliases_delete(alias: str, principal: PowerUser, resources: ResourcesDep) -> Response:
    if not await delete_alias(resources.db, alias):
        raise NotFound(f"No local alias `{alias}`.")
    await aliases_changed(resources)
    return Response(status_code=204)


async def aliases_changed(resources: Resources) -> None:
    await publish_catalogue(resources.db, resources.redis, resources.keys)
    await resources.routes_changed()


async def _existing(resources: Resources, alias: str) -> Any:
    row = await get_alias(resources.db, alias)
    if row is None:
        raise NotFound(f"No local alias `{alias}`.")
    return row
