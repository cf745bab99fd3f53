"""Browser sessions: log in (sets an HttpOnly cookie), log out, and who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from bodhi_api.auth.login_limit import clear_login_failures, reserve_login_attempt
from bodhi_api.auth.passwords import verify_password
from bodhi_api.auth.principal import AnyUser, check_same_origin
from bodhi_api.auth.sessions import COOKIE_NAME, SESSION_TTL_S, end_session, start_session
from bodhi_api.auth.users import MAX_PASSWORD, MAX_USERNAME, find_login
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotAuthenticated
from bodhi_shared.clean_text import CleanLine, CleanText

router = APIRouter(tags=["auth"])


class LoginRequest(BaseModel):
    # Bounded so that a huge body is refused (400) before the login limit writes to Redis or argon2 hashes it.
    # NUL and lone surrogates refused too (``clean_text``): they would fail in Postgres or the digest.
    username: CleanLine = Field(min_length=1, max_length=MAX_USERNAME)
    password: CleanText = Field(min_length=1, max_length=MAX_PASSWORD)


@router.post("/bodhi/v1/auth/login")
async def login(body: LoginRequest, request: Request, response: Response, resources: ResourcesDep) -> dict[str, str]:
    check_same_origin(request)
    # The TCP peer, or the X-Forwarded-For address only when that peer is a trusted proxy
    # (``forwarded.ForwardedHeadersMiddleware``, from BODHI_TRUSTED_PROXIES).
    client = request.client.host if request.client else "unknown"
    limit_key = {"username": body.username, "client": client}
    await reserve_login_attempt(resources.redis, resources.keys, **limit_key)  # counts as failed until it succeeds
    found = await find_login(resources.db, body.username)
    if not await verify_password(found[1] if found else None, body.password) or found is None:
        raise NotAuthenticated("Wrong username or password.")
    await clear_login_failures(resources.redis, resources.keys, **limit_key)
    user = found[0]
    session_id = await start_session(resources.redis, resources.keys, user_id=user.id)
    response.set_cookie(
        COOKIE_NAME,
        session_id,
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return user.public()


@router.post("/bodhi/v1/auth/logout", status_code=204)
async def logout(request: Request, resources: ResourcesDep) -> Response:
    session_id = request.cookies.get(COOKIE_NAME)
    if session_id:
        check_same_origin(request)
        await end_session(resources.redis, resources.keys, session_id)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


@router.get("/bodhi/v1/user")
async def current_user(principal: AnyUser) -> dict[str, str]:
    return principal.user.public()
