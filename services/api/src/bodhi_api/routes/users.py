"""Users management (manager and above). Nobody acts above their own role or on themselves, and a manager whose
own models are limited grants only within them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from bodhi_api.auth.grants import AllowedModels, covers, normalise
from bodhi_api.auth.limits import LimitsBody
from bodhi_api.auth.principal import Manager, Principal
from bodhi_api.auth.roles import Role
from bodhi_api.auth.sessions import end_user_sessions
from bodhi_api.auth.users import (
    User,
    change_role,
    create_user,
    delete_user,
    find_user,
    list_users,
    parse_user_id,
    set_allowed_models,
    set_limits,
)
from bodhi_api.budget_spend import spent_in_period
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotFound, PermissionDenied
from bodhi_shared.clean_text import CleanLine, CleanText

router = APIRouter(tags=["users"])


class UserCreate(BaseModel):
    # Lengths and spaces are checked by ``users.check_credentials_shape``; what Postgres cannot store, here.
    username: CleanLine
    password: CleanText
    role: Role
    allowed_models: AllowedModels | None = Field(
        default=None, description="Model ids or patterns (`*`: any characters) the user may use; null: every model."
    )


class RoleUpdate(BaseModel):
    role: Role


class ModelsUpdate(BaseModel):
    allowed_models: AllowedModels | None = Field(
        description="Model ids or patterns (`*`: any characters) the user may use; null: every model."
    )


def _check_may_grant(actor: Principal, role: Role) -> None:
    if not actor.user.role.at_least(role):
        raise PermissionDenied(f"You cannot grant `{role.value}`: it is above your role `{actor.user.role.value}`.")


def _check_may_grant_models(actor: Principal, allowed_models: Sequence[str] | None) -> None:
    limit = actor.grant.user
    if not covers(limit, normalise(allowed_models)):
        mine = ", ".join(f"`{p}`" for p in limit or ())
        raise PermissionDenied(f"You may grant only models within your own ({mine or 'none'}).", param="allowed_models")


async def _target(resources: ResourcesDep, actor: Principal, raw_id: str) -> User:
    user_id = parse_user_id(raw_id)
    target = await find_user(resources.db, user_id) if user_id else None
    if target is None:
        raise NotFound(f"No user with id `{raw_id}`.")
    if target.id == actor.user.id:
        raise PermissionDenied("You cannot change or delete your own account here.")
    if not actor.user.role.at_least(target.role):
        raise PermissionDenied(f"`{target.username}` has a role above yours.")
    return target


@router.get("/bodhi/v1/users")
async def users_list(actor: Manager, resources: ResourcesDep) -> dict[str, list[dict[str, object]]]:
    """Every user; ``budget_spent``: for a user with a budget, what they spent in its current period (all their
    requests: ``budget_spend``), else null."""
    users = await list_users(resources.db)
    budgets = {u.id: u.limits.budget_period for u in users if u.limits.budget_period is not None}
    await resources.usage.flush()  # include what this replica has not written yet
    spent = await spent_in_period(resources.db, subject="user_id", periods=budgets, now=datetime.now(UTC))
    return {"data": [u.managed() | {"budget_spent": spent.get(u.id)} for u in users]}


@router.post("/bodhi/v1/users", status_code=201)
async def users_create(body: UserCreate, actor: Manager, resources: ResourcesDep) -> dict[str, object]:
    _check_may_grant(actor, body.role)
    _check_may_grant_models(actor, body.allowed_models)
    user = await create_user(
        resources.db,
        username=body.username,
        password=body.password,
        role=body.role,
        allowed_models=body.allowed_models,
    )
    return user.managed()


@router.put("/bodhi/v1/users/{user_id}/role")
async def users_change_role(user_id: str, body: RoleUpdate, actor: Manager, resources: ResourcesDep) -> dict[str, str]:
    target = await _target(resources, actor, user_id)
    _check_may_grant(actor, body.role)
    await change_role(resources.db, user_id=target.id, role=body.role)
    await resources.credentials_changed()
    await end_user_sessions(resources.redis, resources.keys, target.id)
    return User(id=target.id, username=target.username, role=body.role).public()


@router.put("/bodhi/v1/users/{user_id}/models")
async def users_change_models(
    user_id: str, body: ModelsUpdate, actor: Manager, resources: ResourcesDep
) -> dict[str, object]:
    """Which models the user may use, their tokens included (each token within it, and within its own list)."""
    target = await _target(resources, actor, user_id)
    _check_may_grant_models(actor, body.allowed_models)
    changed = await set_allowed_models(resources.db, user_id=target.id, allowed_models=body.allowed_models)
    if changed is None:
        raise NotFound(f"No user with id `{user_id}`.")
    await resources.credentials_changed()  # cached token verifications hold the old grant: dropped everywhere
    return changed.managed()


@router.put("/bodhi/v1/users/{user_id}/limits")
async def users_change_limits(
    user_id: str, body: LimitsBody, actor: Manager, resources: ResourcesDep
) -> dict[str, object]:
    """The user's rate limits (requests and tokens per minute) and token budget (per UTC day or month), their
    tokens included (each token within them, and within its own); a field null or absent: unlimited."""
    target = await _target(resources, actor, user_id)
    changed = await set_limits(resources.db, user_id=target.id, limits=body.limits())
    if changed is None:
        raise NotFound(f"No user with id `{user_id}`.")
    await resources.credentials_changed()  # cached token verifications hold the old limits: dropped everywhere
    return changed.managed()


@router.delete("/bodhi/v1/users/{user_id}", status_code=204)
async def users_delete(user_id: str, actor: Manager, resources: ResourcesDep) -> Response:
    target = await _target(resources, actor, user_id)
    await delete_user(resources.db, target.id)
    await resources.credentials_changed()
    await end_user_sessions(resources.redis, resources.keys, target.id)
    return Response(status_code=204)
