"""Who is calling: a bearer API token or a browser session, resolved once per request; and what they may do."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request

from bodhi_api import access_log
from bodhi_api.auth.api_tokens import parse_token
from bodhi_api.auth.grants import ALL_MODELS, ModelGrant
from bodhi_api.auth.limits import NO_LIMITS, PrincipalLimits
from bodhi_api.auth.roles import Role
from bodhi_api.auth.sessions import COOKIE_NAME, session_user_id
from bodhi_api.auth.token_expiry import is_expired, token_expired
from bodhi_api.auth.tokens import now_utc, touch_last_used, verify_token
from bodhi_api.auth.users import User, find_user
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import CrossOriginRefused, NotAuthenticated, PermissionDenied

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where a token may also come as `x-api-key` (Anthropic's header): the OpenAI- and Anthropic-compatible routes.
API_KEY_PATHS = "/v1/"
_HOW_TO = "Send `Authorization: Bearer <token>` (create one with POST /bodhi/v1/tokens) or log in."


@dataclass(frozen=True, slots=True)
class Principal:
    user: User  # for a token, with its effective role (the lower of its scope and its owner's role)
    via: Literal["token", "session"]
    owner_role: Role  # the user's own role, whatever the token's scope
    token_id: uuid.UUID | None = None
    grant: ModelGrant = ALL_MODELS  # the models it may use: the user's grant, and a token's own (``auth.grants``)
    limits: PrincipalLimits = NO_LIMITS  # the user's rate limits and budget, and a token's own (``auth.limits``)


def check_same_origin(request: Request) -> None:
    """Refuse a cookie-carrying state change that a browser says came from another site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CrossOriginRefused("Cross-site requests may not change state with a session cookie.")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise CrossOriginRefused(f"Requests from origin {origin} may not change state with a session cookie.")


async def authenticate(request: Request, resources: ResourcesDep) -> Principal:
    principal = await _authenticate(request, resources)
    access_log.note(user_id=principal.user.id)  # the request's access line names who made it
    return principal


async def _authenticate(request: Request, resources: ResourcesDep) -> Principal:
    authorization = request.headers.get("authorization")
    if authorization is None and request.url.path.startswith(API_KEY_PATHS):
        api_key = request.headers.get("x-api-key")  # how Anthropic's SDKs send the key: a Bodhi token here too
        authorization = f"Bearer {api_key}" if api_key is not None else None
    if authorization is not None:
        return await _from_bearer(resources, authorization)
    session_id = request.cookies.get(COOKIE_NAME)
    if session_id:
        user_id = await session_user_id(resources.redis, resources.keys, session_id)
        user = await find_user(resources.db, user_id) if user_id else None
        if user is None:
            raise NotAuthenticated(f"Your session has ended. {_HOW_TO}")
        if request.method not in SAFE_METHODS:
            check_same_origin(request)
        return Principal(
            user=user,
            via="session",
            owner_role=user.role,
            grant=ModelGrant(user=user.allowed_models),
            limits=PrincipalLimits(user_id=user.id, user=user.limits),
        )
    raise NotAuthenticated(f"Missing credentials. {_HOW_TO}")


async def _from_bearer(resources: ResourcesDep, authorization: str) -> Principal:
    scheme, _, credential = authorization.partition(" ")
    parsed = parse_token(credential.strip()) if scheme.lower() == "bearer" else None
    verified = resources.token_cache.get(parsed.token_hash) if parsed else None
    if verified is None and parsed is not None:
        verified = await verify_token(resources.db, parsed)
        if verified is not None:
            resources.token_cache.put(parsed.token_hash, verified)
    if verified is None:
        raise NotAuthenticated(f"Invalid, inactive or deleted API token. {_HOW_TO}")
    now = now_utc()
    if verified.expires_at is not None and is_expired(verified.expires_at, now):  # checked on cached ones too
        raise token_expired(verified.expires_at)
    if verified.needs_last_used_update(now):
        resources.spawn(touch_last_used(resources.db, verified.token_id))
    return Principal(
        user=verified.user,
        via="token",
        owner_role=verified.owner_role,
        token_id=verified.token_id,
        grant=verified.grant,
        limits=verified.principal_limits,
    )


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers whose (effective) role is at least ``role``."""

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.user.role.at_least(role):
            raise PermissionDenied(
                f"This needs the role `{role.value}` or higher; yours is `{principal.user.role.value}`."
            )
        return principal

    return dependency


async def require_token_manager(principal: Annotated[Principal, Depends(require(Role.USER))]) -> Principal:
    """Admit a browser session, or a token of an admin; refuse other tokens.

    A token that could make tokens would outlive its own revocation through the ones it made: whoever stole it
    keeps access. Only someone who can log in (or an admin, who can revoke anyone's anyway) manages tokens.
    """
    if principal.via == "token" and principal.owner_role != Role.ADMIN:
        raise PermissionDenied(
            "API tokens cannot manage API tokens: log in (POST /bodhi/v1/auth/login, or the web UI) and manage "
            "them from that session."
        )
    return principal


AnyUser = Annotated[Principal, Depends(require(Role.USER))]
TokenManager = Annotated[Principal, Depends(require_token_manager)]
PowerUser = Annotated[Principal, Depends(require(Role.POWER_USER))]
Manager = Annotated[Principal, Depends(require(Role.MANAGER))]
