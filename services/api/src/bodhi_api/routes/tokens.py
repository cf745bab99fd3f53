"""API tokens of the calling user: create (shown once, optionally expiring, limited to some models, rate-limited
and with a budget: ``auth.limits``), list, rename, (de)activate or change its models and limits, delete.

Only from a browser session or an admin's token (``principal.require_token_manager``).
"""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, model_validator

from bodhi_api.auth.grants import AllowedModels, normalise
from bodhi_api.auth.limits import LIMIT_FIELDS, BudgetTokens, Limits, LimitsBody, PerMinute
from bodhi_api.auth.principal import TokenManager
from bodhi_api.auth.roles import TokenScope
from bodhi_api.auth.token_expiry import ExpiresInDays, Timestamp, expiry
from bodhi_api.auth.tokens import delete_token, issue_token, list_tokens, now_utc, public_token, update_token
from bodhi_api.auth.users import parse_user_id
from bodhi_api.budget_spend import spent_in_period
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotFound, PermissionDenied
from bodhi_shared.clean_text import CleanLine
from bodhi_shared.rate_limits import BudgetPeriod

router = APIRouter(tags=["tokens"])


class TokenCreate(LimitsBody):
    name: CleanLine = Field(min_length=1, max_length=100)
    scope: TokenScope = TokenScope.USER
    expires_in_days: ExpiresInDays | None = Field(default=None, description="It stops working this many days on.")
    expires_at: Timestamp | None = Field(default=None, description="It stops working at this time (RFC 3339).")
    allowed_models: AllowedModels | None = Field(
        default=None,
        description="Model ids or patterns (`*`: any characters) it may use, within its owner's; null: every model.",
    )


class TokenUpdate(BaseModel):
    name: CleanLine | None = Field(default=None, min_length=1, max_length=100)
    status: Literal["active", "inactive"] | None = None


class TokenPatch(TokenUpdate):
    """Only the fields sent change; ``allowed_models: null`` lets the token use every model its owner may, a limit
    set to null makes it unlimited (``budget_tokens`` and ``budget_period`` change together)."""

    allowed_models: AllowedModels | None = None
    rpm_limit: PerMinute | None = Field(default=None, description="Requests per minute; null: unlimited.")
    tpm_limit: PerMinute | None = Field(default=None, description="Tokens (prompt + completion) per minute.")
    budget_tokens: BudgetTokens | None = Field(default=None, description="Tokens per `budget_period`.")
    budget_period: BudgetPeriod | None = Field(default=None, description="`day` or `month`, UTC.")

    @model_validator(mode="after")
    def _budget_changes_whole(self) -> TokenPatch:
        sent = {"budget_tokens", "budget_period"} & self.model_fields_set
        if sent and (len(sent) == 1 or (self.budget_tokens is None) != (self.budget_period is None)):
            raise ValueError("`budget_tokens` and `budget_period` (`day` or `month`) go together.")
        return self

    def limit_changes(self) -> dict[str, int | str | None]:
        return {field: getattr(self, field) for field in LIMIT_FIELDS if field in self.model_fields_set}


def _token_id(raw: str) -> uuid.UUID:
    token_id = parse_user_id(raw)
    if token_id is None:
        raise NotFound(f"No token with id `{raw}`.")
    return token_id


@router.post("/bodhi/v1/tokens", status_code=201)
async def tokens_create(body: TokenCreate, principal: TokenManager, resources: ResourcesDep) -> dict[str, object]:
    if not principal.user.role.at_least(body.scope.role):
        raise PermissionDenied(f"A token's scope cannot exceed your role `{principal.user.role.value}`.")
    expires_at = expiry(expires_in_days=body.expires_in_days, expires_at=body.expires_at, now=now_utc())
    token_id, token = await issue_token(
        resources.db,
        user_id=principal.user.id,
        name=body.name,
        scope=body.scope,
        expires_at=expires_at,
        allowed_models=body.allowed_models,
        limits=body.limits(),
    )
    models = normalise(body.allowed_models)
    return {
        "id": token_id,
        "name": body.name,
        "token": token,
        "expires_at": expires_at.isoformat() if expires_at else None,
        "allowed_models": list(models) if models is not None else None,
        **body.limits().public(),
    }


@router.get("/bodhi/v1/tokens")
async def tokens_list(principal: TokenManager, resources: ResourcesDep) -> dict[str, list[dict[str, object]]]:
    """The caller's tokens; ``budget_spent``: for a token with a budget, what it spent in the current period
    (tokens, and US dollars where its models have prices: ``budget_spend``), else null."""
    rows = await list_tokens(resources.db, user_id=principal.user.id)
    budgets = {r["id"]: period for r in rows if (period := Limits.from_row(r).budget_period) is not None}
    await resources.usage.flush()  # include what this replica has not written yet
    spent = await spent_in_period(
        resources.db, subject="token_id", periods=budgets, now=now_utc(), owner=principal.user.id
    )
    return {"data": [public_token(r) | {"budget_spent": spent.get(r["id"])} for r in rows]}


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


@router.patch("/bodhi/v1/tokens/{token_id}")
async def tokens_patch(
    token_id: str, body: TokenPatch, principal: TokenManager, resources: ResourcesDep
) -> dict[str, object]:
    row = await update_token(
        resources.db,
        user_id=principal.user.id,
        token_id=_token_id(token_id),
        name=body.name,
        status=body.status,
        set_models="allowed_models" in body.model_fields_set,
        allowed_models=body.allowed_models,
        limits=body.limit_changes(),
    )
    if row is None:
        raise NotFound(f"You have no token with id `{token_id}`.")
    await resources.credentials_changed()  # cached verifications hold the old grant and limits: dropped everywhere
    return public_token(row)


@router.delete("/bodhi/v1/tokens/{token_id}", status_code=204)
async def tokens_delete(token_id: str, principal: TokenManager, resources: ResourcesDep) -> Response:
    if not await delete_token(resources.db, user_id=principal.user.id, token_id=_token_id(token_id)):
        raise NotFound(f"You have no token with id `{token_id}`.")
    await resources.credentials_changed()
    return Response(status_code=204)
