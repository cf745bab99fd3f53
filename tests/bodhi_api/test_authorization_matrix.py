"""Every route of the app x every kind of caller, against the expected status class.

The expectations are keyed by the app's own route table: a route added without an entry here fails.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute

from bodhi_api.app import ROUTERS
from tests.conftest import ADMIN_PASSWORD, Gateway

PUBLIC = "public"
# Token management: a session of any role, or a token whose owner is an admin; never another token (a token that
# could make tokens would outlive its own revocation through them).
TOKEN_MANAGEMENT = "token-management"
# The lowest role that may call each route (or one of the kinds above).
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/ping"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/bodhi/v1/info"): PUBLIC,
    ("POST", "/bodhi/v1/setup"): PUBLIC,
    ("POST", "/bodhi/v1/auth/login"): PUBLIC,
    ("POST", "/bodhi/v1/auth/logout"): PUBLIC,
    ("GET", "/bodhi/v1/user"): "user",
    ("GET", "/bodhi/v1/users"): "manager",
    ("POST", "/bodhi/v1/users"): "manager",
    ("PUT", "/bodhi/v1/users/{user_id}/role"): "manager",
    ("PUT", "/bodhi/v1/users/{user_id}/models"): "manager",
    ("PUT", "/bodhi/v1/users/{user_id}/limits"): "manager",
    ("DELETE", "/bodhi/v1/users/{user_id}"): "manager",
    ("POST", "/bodhi/v1/tokens"): TOKEN_MANAGEMENT,
    ("GET", "/bodhi/v1/tokens"): TOKEN_MANAGEMENT,
    ("PUT", "/bodhi/v1/tokens/{token_id}"): TOKEN_MANAGEMENT,
    ("PATCH", "/bodhi/v1/tokens/{token_id}"): TOKEN_MANAGEMENT,
    ("DELETE", "/bodhi/v1/tokens/{token_id}"): TOKEN_MANAGEMENT,
    ("GET", "/bodhi/v1/models/api"): "user",
    ("GET", "/bodhi/v1/models/api/formats"): "user",
    ("GET", "/bodhi/v1/models/api/{api_model_id}"): "user",
    ("POST", "/bodhi/v1/models/api"): "power_user",
    ("PUT", "/bodhi/v1/models/api/{api_model_id}"): "power_user",
    ("PATCH", "/bodhi/v1/models/api/{api_model_id}"): "power_user",
    ("DELETE", "/bodhi/v1/models/api/{api_model_id}"): "power_user",
    ("POST", "/bodhi/v1/models/api/fetch-models"): "power_user",
    ("POST", "/bodhi/v1/models/api/test"): "power_user",
    ("GET", "/bodhi/v1/models/alias"): "user",
    ("GET", "/bodhi/v1/models/alias/{alias:path}"): "user",
    ("POST", "/bodhi/v1/models/alias"): "power_user",
    ("PUT", "/bodhi/v1/models/alias/{alias:path}"): "power_user",
    ("DELETE", "/bodhi/v1/models/alias/{alias:path}"): "power_user",
    ("GET", "/bodhi/v1/models/files"): "power_user",
    ("GET", "/bodhi/v1/routers"): "user",
    ("POST", "/bodhi/v1/routers"): "manager",
    ("GET", "/bodhi/v1/routers/{model_id:path}"): "user",
    ("PUT", "/bodhi/v1/routers/{model_id:path}"): "manager",
    ("DELETE", "/bodhi/v1/routers/{model_id:path}"): "manager",
    ("GET", "/bodhi/v1/models"): "user",
    ("GET", "/v1/models"): "user",
    ("GET", "/v1/models/{model_id:path}"): "user",
    ("POST", "/v1/chat/completions"): "user",
    ("POST", "/v1/completions"): "user",
    ("POST", "/v1/embeddings"): "user",
    ("POST", "/v1/responses"): "user",
    ("GET", "/v1/responses/{response_id}"): "user",
    ("DELETE", "/v1/responses/{response_id}"): "user",
    ("POST", "/v1/messages"): "user",
    ("GET", "/bodhi/v1/usage"): "user",
    ("GET", "/bodhi/v1/prices"): "user",
    ("GET", "/bodhi/v1/prices/{model_id:path}"): "user",
    ("PUT", "/bodhi/v1/prices/{model_id:path}"): "manager",
    ("DELETE", "/bodhi/v1/prices/{model_id:path}"): "manager",
    ("GET", "/metrics"): "user",
}
RANK = {"user": 0, "power_user": 1, "manager": 2, "admin": 3}


def app_routes() -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    )


def test_every_route_has_an_expectation() -> None:
    assert set(app_routes()) == set(EXPECTED)


@dataclass
class Caller:
    label: str
    role: str | None  # the effective role (a token's: the lower of its scope and its owner's role); None: anonymous
    headers: dict[str, str]
    owner_role: str | None = None  # for a token: its owner's own role; None for a session (or anonymous)


async def login(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    """Log in; return the headers that carry the session cookie."""
    response = await http.post("/bodhi/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    http.cookies.clear()
    return {"Cookie": f"bodhi_session={response.cookies['bodhi_session']}"}


async def issue_token(http: httpx.AsyncClient, session: dict[str, str], scope: str) -> dict[str, str]:
    issued = await http.post("/bodhi/v1/tokens", headers=session, json={"name": f"matrix-{scope}", "scope": scope})
    assert issued.status_code == 201, issued.text
    return {"Authorization": f"Bearer {issued.json()['token']}"}


@pytest.fixture
async def callers(gateway: Gateway) -> list[Caller]:
    """Anonymous, a session of each role, a token of each scope owned by an admin, and a token of the highest
    scope each other role may have."""
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        admin = await login(http, gateway.admin_username, ADMIN_PASSWORD)
        found = [Caller("anonymous", None, {})]
        for role in RANK:
            name, password = f"matrix-{role}-{uuid.uuid4().hex[:6]}", "matrix-password"
            created = await http.post(
                "/bodhi/v1/users", headers=admin, json={"username": name, "password": password, "role": role}
            )
            assert created.status_code == 201, created.text
            session = await login(http, name, password)
            found.append(Caller(f"session:{role}", role, session))
            if role != "admin":
                scope = "user" if role == "user" else "power_user"
                headers = await issue_token(http, session, scope)
                found.append(Caller(f"token:{scope} of a {role}", scope, headers, owner_role=role))
        for scope in ("user", "power_user"):
            headers = await issue_token(http, admin, scope)
            found.append(Caller(f"token:{scope} of an admin", scope, headers, owner_role="admin"))
        # Anthropic's header: a token there counts on the /v1/ routes only (``principal.API_KEY_PATHS``).
        token = (await issue_token(http, admin, "power_user"))["Authorization"].removeprefix("Bearer ")
        found.append(Caller("x-api-key:power_user of an admin", "power_user", {"x-api-key": token}, owner_role="admin"))
    return found


def expected_outcome(route_role: str, caller: Caller, path: str = "/") -> str:
    if route_role == PUBLIC:
        return "allowed"
    if caller.role is None or ("x-api-key" in caller.headers and not path.startswith("/v1/")):
        return "401"
    if route_role == TOKEN_MANAGEMENT:
        return "allowed" if caller.owner_role in (None, "admin") else "403"  # None: a session
    return "allowed" if RANK[caller.role] >= RANK[route_role] else "403"


def outcome(status: int) -> str:
    """What the answer says of the caller's rights; a 5xx says nothing, so it never counts as allowed."""
    if status >= 500:
        return f"server error {status}"
    return str(status) if status in (401, 403) else "allowed"


async def test_authorization_matrix(gateway: Gateway, callers: list[Caller]) -> None:
    # Logout last: it ends the session it is called with.
    routes = sorted(EXPECTED, key=lambda r: r == ("POST", "/bodhi/v1/auth/logout"))
    mismatches = []
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        for method, path in routes:
            url = path
            for param in (
                "{user_id}",
                "{token_id}",
                "{api_model_id}",
                "{model_id:path}",
                "{alias:path}",
                "{response_id}",
            ):
                url = url.replace(param, str(uuid.uuid4()))
            for caller in callers:
                http.cookies.clear()
                response = await http.request(
                    method,
                    url,
                    headers=caller.headers,
                    json={} if method in ("POST", "PUT", "PATCH") else None,
                )
                want, got = expected_outcome(EXPECTED[(method, path)], caller, path), outcome(response.status_code)
                if want != got:
                    mismatches.append(f"{method} {path} as {caller.label}: want {want}, got {response.status_code}")
    assert mismatches == []
