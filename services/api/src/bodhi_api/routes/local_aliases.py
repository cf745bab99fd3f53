"""``/bodhi/v1/models/alias``: local aliases (read: any user; write: power_user and above), and
``/bodhi/v1/models/files``: the GGUF files an alias could name (power_user and above: it shows server paths)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Response

from bodhi_api.auth.principal import AnyUser, PowerUser
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotFound
from bodhi_api.local_aliases.gguf_files import FoundFile, list_gguf_files
from bodhi_api.local_aliases.schemas import (
    AliasFields,
    GgufFile,
    GgufFileList,
    LocalAliasCreate,
    LocalAliasFile,
    LocalAliasList,
    LocalAliasPublic,
    alias_fields,
)
from bodhi_api.local_aliases.store import (
    add_discovered_aliases,
    delete_alias,
    get_alias,
    list_aliases,
    publish_catalogue,
    save_alias,
)
from bodhi_api.resources import Resources
from bodhi_api.served_ids import named_in_path
from bodhi_shared.errors import InvalidRequest

router = APIRouter(tags=["local-aliases"])
BASE = "/bodhi/v1/models/alias"
# What a local worker that follows the catalogue is told after the catalogue was rewritten.
CATALOGUE_CHANGED = b"catalogue"


def models_dir(resources: Resources) -> Path:
    return resources.settings.home / "models"


async def checked_fields(body: LocalAliasFile, *, alias: str, resources: Resources) -> AliasFields:
    """``alias_fields`` in a thread: finding the file (the HF cache's snapshots) and reading its header are disk
    work, which must not hold up the event loop."""
    return await asyncio.to_thread(alias_fields, body, alias=alias, models_dir=models_dir(resources))


@router.get(BASE, response_model=LocalAliasList)
async def aliases_list(principal: AnyUser, resources: ResourcesDep) -> LocalAliasList:
    if await add_discovered_aliases(resources.db):
        await aliases_changed(resources)
    return LocalAliasList(data=[LocalAliasPublic.of(r) for r in await list_aliases(resources.db)])


@router.post(BASE, status_code=201, response_model=LocalAliasPublic)
async def aliases_create(body: LocalAliasCreate, principal: PowerUser, resources: ResourcesDep) -> LocalAliasPublic:
    fields = await checked_fields(body, alias=body.alias, resources=resources)
    await save_alias(resources.db, fields, create=True)
    await aliases_changed(resources)
    return LocalAliasPublic.of(await _existing(resources, fields.alias))


@router.get("/bodhi/v1/models/files", response_model=GgufFileList)
async def gguf_files(principal: PowerUser, resources: ResourcesDep) -> GgufFileList:
    folder = models_dir(resources)
    found = await asyncio.to_thread(list_gguf_files, folder)  # walks directories: not on the event loop
    return GgufFileList(data=[_public_file(f) for f in found], models_dir=str(folder))


def _public_file(found: FoundFile) -> GgufFile:
    return GgufFile(
        path=str(found.path),
        filename=found.filename,
        repo=found.repo,
        source="hf_cache" if found.repo else "models_dir",
        size_bytes=found.size_bytes,
    )


@router.get(f"{BASE}/{{alias:path}}", response_model=LocalAliasPublic)
async def aliases_get(alias: str, principal: AnyUser, resources: ResourcesDep) -> LocalAliasPublic:
    return LocalAliasPublic.of(await _existing(resources, alias))


@router.put(f"{BASE}/{{alias:path}}", response_model=LocalAliasPublic)
async def aliases_update(
    alias: str, body: LocalAliasFile, principal: PowerUser, resources: ResourcesDep
) -> LocalAliasPublic:
    if body.alias is not None and body.alias != alias:
        raise InvalidRequest("An alias cannot be renamed: create the new name and delete the old.", param="alias")
    await _existing(resources, alias)
    fields = await checked_fields(body, alias=alias, resources=resources)
    await save_alias(resources.db, fields, create=False)
    await aliases_changed(resources)
    return LocalAliasPublic.of(await _existing(resources, alias))


@router.delete(f"{BASE}/{{alias:path}}", status_code=204)
async def aliases_delete(alias: str, principal: PowerUser, resources: ResourcesDep) -> Response:
    if not await delete_alias(resources.db, _named(alias)):
        raise NotFound(f"No local alias `{alias}`.")
    await aliases_changed(resources)
    return Response(status_code=204)


async def aliases_changed(resources: Resources) -> None:
    """Rewrite the catalogue, then tell the local workers that follow it (they serve a new alias at once) and the
    API replicas (they drop their cached routes)."""
    await publish_catalogue(resources.db, resources.redis, resources.keys)
    await resources.redis.publish(resources.keys.local_worker_control, CATALOGUE_CHANGED)
    await resources.routes_changed()


def _named(alias: str) -> str:
    return named_in_path(alias, what="local alias", names="alias names")


async def _existing(resources: Resources, alias: str) -> Any:
    row = await get_alias(resources.db, _named(alias))
    if row is None:
        raise NotFound(f"No local alias `{alias}`.")
    return row
