"""API tokens of the calling user: create (shown once), list, rename or (de)activate, delete.

Only from a browser session or an admin's token (``principal.require_token_manager``).
"""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from bodhi_api.auth.principal import TokenManager
from bodhi_api.auth.roles import TokenScope
from bodhi_api.auth.tokens import delete_token, issue_token, list_tokens, public_token, update_token
from bodhi_api.auth.users import parse_user_id
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotFound, PermissionDenied
from bodhi_shared.clean_text import CleanLine

router = APIRouter(tags=["tokens"])


class TokenCreate(BaseModel):
    name: CleanLine = Field(min_length=1, max_length=100)
    scope: TokenScope = TokenScope.USER


class TokenUpdate(BaseModel):
    name: CleanLine | None = Field(default=None, min_length=1, max_length=100)
    status: Literal["active", "inactive"] | None = None


def _token_id(raw: str) -> uuid.UUID:
    token_id = parse_user_id(raw)
    if token_id is None:
        raise NotFound(f"No token with id `{raw}`.")
    return token_id


@router.post("/bodhi/v1/tokens", status_code=201)
async def tokens_create(body: TokenCreate, principal: TokenManager, resources: ResourcesDep) -> dict[str, str]:
    if not principal.user.role.at_least(body.scope.role):
        raise PermissionDenied(f"A token's scope cannot exceed your role `{principal.user.role.value}`.")
    token_id, token = await issue_token(resources.db, user_id=principal.user.id, name=body.name, scope=body.scope)
    return {"id": token_id, "name": body.name, "token": token}


@router.get("/bodhi/v1/tokens")
async def tokens_list(principal: TokenManager, resources: ResourcesDep) -> dict[str, list[dict[str, object]]]:
    return {"data": [public_token(r) for r in await list_tokens(resources.db, user_id=principal.user.id)]}


@router.put("/bodhi/v1/tokens/{token_id}")
async def tokens_update(
    token_id: str, body: TokenUpdate, principal: TokenManager, resources: ResourcesDep
) -> dict[str, object]:
    row = await update_token(
        resources.db, user_id=principal.user.id, token_id=_token_id(token_id), name=body.name, status=body.status
    )
    if row is None:
        raise NotFound(f"You have no token with id `{token_id}`.")
    await resources.credentials_changed()
    return public_token(row)


@router.delete("/bodhi/v1/tokens/{token_id}", status_code=204)
async def tokens_delete(token_id: str, principal: TokenManager, resources: ResourcesDep) -> Response:
    if not await delete_token(resources.db, user_id=principal.user.id, token_id=_token_id(token_id)):
        raise NotFound(f"You have no token with id `{token_id}`.")
    await resources.credentials_changed()
    return Response(status_code=204)
