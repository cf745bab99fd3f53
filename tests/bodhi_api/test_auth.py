"""Users, sessions and API tokens through a real gateway: setup, login, CSRF, role rules, secrets.

The login limit has its own module, test_login_limit.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bodhi_api.auth.limits import LIMIT_FIELDS
from tests.conftest import ADMIN_PASSWORD, Gateway
from tests.support.backing import create_database, drop_database, new_name
from tests.support.fake_upstream import free_port
from tests.support.processes import BodhiProcess, wait_until_serving

COOKIE = "bodhi_session"
PASSWORD = "test-password-1"
TOKEN_FIELDS = {
    *("id", "name", "scope", "status", "created_at", "updated_at", "last_used_at"),
    *("expires_at", "expired", "allowed_models"),
    *LIMIT_FIELDS,
    "budget_spent",  # as listed: what a budget spent this period, null without one
}


class Recorder:
    """Every response body this module received, to check that no secret ever comes back."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str]] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.bodies.append((f"{response.request.method} {response.request.url.path}", response.text))


RECORDED = Recorder()


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials; each request carries its own (see ``session``)."""
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20, event_hooks={"response": [RECORDED]}) as c:
        yield c


@pytest.fixture
async def admin(http: httpx.AsyncClient, gateway: Gateway) -> dict[str, str]:
    return await login(http, gateway.admin_username, ADMIN_PASSWORD)


def session(session_id: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={session_id}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    """Log in; return the headers that carry the session cookie (the client's own jar stays empty)."""
    response = await http.post("/bodhi/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    session_id = response.cookies[COOKIE]
    http.cookies.clear()
    return session(session_id)


async def create_user(
    http: httpx.AsyncClient, actor: dict[str, str], role: str, *, password: str = PASSWORD
) -> tuple[str, str]:
    """Create a user as ``actor``; return (id, username)."""
    username = f"{role}-{uuid.uuid4().hex[:8]}"
    response = await http.post(
        "/bodhi/v1/users", headers=actor, json={"username": username, "password": password, "role": role}
    )
    assert response.status_code == 201, response.text
    assert response.json()["role"] == role
    return response.json()["id"], username


async def create_token(http: httpx.AsyncClient, actor: dict[str, str], scope: str = "user") -> tuple[str, str]:
    """Create a token as ``actor``; return (id, token)."""
    response = await http.post("/bodhi/v1/tokens", headers=actor, json={"name": f"t-{scope}", "scope": scope})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


def assert_error(response: httpx.Response, status: int, error_type: str, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    if code is not None:
        assert error["code"] == code


def assert_unauthenticated(response: httpx.Response) -> None:
    assert_error(response, 401, "authentication_error", "invalid_api_key")


async def test_setup_creates_exactly_one_admin_under_concurrent_calls(
    gateway: Gateway, postgres_server_url: str, scratch: Path
) -> None:
    name = new_name("bodhi_test_setup")
    database_url = await create_database(postgres_server_url, name)
    port = free_port()
    env = gateway.env | {
        "BODHI_DATABASE_URL": database_url,
        "BODHI_REDIS_PREFIX": new_name("bodhitest-setup"),
        "BODHI_PORT": str(port),
    }
    api = BodhiProcess(["api"], env=env, log_path=scratch / f"api-setup-{port}.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until_serving, base_url, api)
        async with httpx.AsyncClient(base_url=base_url, timeout=20, event_hooks={"response": [RECORDED]}) as fresh:
            before = await fresh.get("/bodhi/v1/info")
            assert before.status_code == 200, before.text
            assert before.json()["status"] == "setup"
            assert isinstance(before.json()["version"], str)

            names = [f"first-{i}-{uuid.uuid4().hex[:6]}" for i in range(6)]
            answers = await asyncio.gather(
                *(fresh.post("/bodhi/v1/setup", json={"username": n, "password": PASSWORD}) for n in names)
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [201, 409, 409, 409, 409, 409], [a.text for a in answers]
            for refused in (a for a in answers if a.status_code == 409):
                assert_error(refused, 409, "invalid_request_error")
            created = next(a for a in answers if a.status_code == 201).json()
            assert created["role"] == "admin"

            after = await fresh.get("/bodhi/v1/info")
            assert after.json()["status"] == "ready"
            again = await fresh.post("/bodhi/v1/setup", json={"username": "late-comer", "password": PASSWORD})
            assert_error(again, 409, "invalid_request_error")
            first_login = {"username": created["username"], "password": PASSWORD}
            assert (await fresh.post("/bodhi/v1/auth/login", json=first_login)).status_code == 200

        conn = await asyncpg.connect(database_url)
        try:
            users = await conn.fetch("SELECT id, username, role FROM users")
        finally:
            await conn.close()
        assert [(str(u["id"]), u["username"], u["role"]) for u in users] == [
            (created["id"], created["username"], "admin")
        ]
    finally:
        await asyncio.to_thread(api.stop)
        await drop_database(postgres_server_url, name)


async def test_login_sets_a_session_cookie_and_logout_ends_it(http: httpx.AsyncClient, admin: dict[str, str]) -> None:
    _, username = await create_user(http, admin, "user")

    wrong = await http.post("/bodhi/v1/auth/login", json={"username": username, "password": "not-the-password"})
    assert_unauthenticated(wrong)
    unknown = await http.post("/bodhi/v1/auth/login", json={"username": f"nobody-{username}", "password": PASSWORD})
    assert_unauthenticated(unknown)
    assert unknown.json()["error"]["message"] == wrong.json()["error"]["message"]  # no username enumeration
    assert COOKIE not in wrong.cookies

    right = await http.post("/bodhi/v1/auth/login", json={"username": username.upper(), "password": PASSWORD})
    assert right.status_code == 200, right.text
    assert right.json()["username"] == username
    attributes = [part.strip().lower() for part in right.headers["set-cookie"].split(";")]
    assert attributes[0].startswith(f"{COOKIE}=")
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "secure" not in attributes  # plain http: a Secure cookie would never be sent back
    cookie = session(right.cookies[COOKIE])
    http.cookies.clear()

    me = await http.get("/bodhi/v1/user", headers=cookie)
    assert me.status_code == 200, me.text
    assert me.json() == {"id": right.json()["id"], "username": username, "role": "user"}
    assert_unauthenticated(await http.get("/bodhi/v1/user"))
    assert_unauthenticated(await http.get("/bodhi/v1/user", headers=session("made-up-session-id")))

    logout = await http.post("/bodhi/v1/auth/logout", headers=cookie)
    assert logout.status_code == 204, logout.text
    http.cookies.clear()
    assert_unauthenticated(await http.get("/bodhi/v1/user", headers=cookie))
    assert_unauthenticated(await http.get("/v1/models", headers=cookie))


async def test_cookie_state_changes_must_be_same_origin(
    http: httpx.AsyncClient, admin: dict[str, str], gateway: Gateway
) -> None:
    _, username = await create_user(http, admin, "user")
    cookie = await login(http, username, PASSWORD)
    body = {"name": "csrf", "scope": "user"}

    evil = await http.post("/bodhi/v1/tokens", headers=cookie | {"Origin": "http://evil.example"}, json=body)
    assert_error(evil, 403, "permission_error", "cross_origin_request")
    cross = await http.post("/bodhi/v1/tokens", headers=cookie | {"Sec-Fetch-Site": "cross-site"}, json=body)
    assert_error(cross, 403, "permission_error", "cross_origin_request")
    null = await http.post("/bodhi/v1/tokens", headers=cookie | {"Origin": "null"}, json=body)
    assert_error(null, 403, "permission_error", "cross_origin_request")
    listed = await http.get("/bodhi/v1/tokens", headers=cookie)
    assert listed.json()["data"] == []  # nothing refused was created

    same = await http.post(
        "/bodhi/v1/tokens", headers=cookie | {"Origin": gateway.base_url, "Sec-Fetch-Site": "same-origin"}, json=body
    )
    assert same.status_code == 201, same.text

    # A bearer token is no ambient credential: the same-origin rule does not apply to it (an admin's token may
    # manage tokens; see test_only_sessions_and_admins_tokens_manage_tokens).
    by_token = await http.post(
        "/bodhi/v1/tokens",
        headers=bearer(gateway.admin_token) | {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        json={"name": "from-a-script", "scope": "user"},
    )
    assert by_token.status_code == 201, by_token.text

    logout = await http.post("/bodhi/v1/auth/logout", headers=cookie | {"Origin": "http://evil.example"})
    assert_error(logout, 403, "permission_error", "cross_origin_request")
    assert (await http.get("/bodhi/v1/user", headers=cookie)).status_code == 200  # a foreign page cannot log us out


async def test_only_sessions_and_admins_tokens_manage_tokens(http: httpx.AsyncClient, admin: dict[str, str]) -> None:
    """A token that could make tokens would survive its own revocation through the ones it made."""
    _, username = await create_user(http, admin, "manager")
    owner = await login(http, username, PASSWORD)
    token_id, token = await create_token(http, owner, "power_user")
    as_token = bearer(token)

    attempts = [
        await http.post("/bodhi/v1/tokens", headers=as_token, json={"name": "spawned", "scope": "user"}),
        await http.get("/bodhi/v1/tokens", headers=as_token),
        await http.put(f"/bodhi/v1/tokens/{token_id}", headers=as_token, json={"status": "active"}),
        await http.delete(f"/bodhi/v1/tokens/{token_id}", headers=as_token),
    ]
    for refused in attempts:
        assert_error(refused, 403, "permission_error")
        assert "log in" in refused.json()["error"]["message"]
    assert (await http.get("/v1/models", headers=as_token)).status_code == 200  # it still works for inference
    assert [t["id"] for t in (await http.get("/bodhi/v1/tokens", headers=owner)).json()["data"]] == [token_id]
    assert (await http.delete(f"/bodhi/v1/tokens/{token_id}", headers=owner)).status_code == 204
    assert_unauthenticated(await http.get("/v1/models", headers=as_token))  # revoked, and nothing it made remains
    assert (await http.get("/bodhi/v1/tokens", headers=owner)).json()["data"] == []

    # An admin's token may (an admin can revoke anyone's tokens anyway); what it made is the admin's own token,
    # which by design outlives the one it was made with.
    maker_id, maker = await create_token(http, admin, "power_user")
    made = await http.post("/bodhi/v1/tokens", headers=bearer(maker), json={"name": "made", "scope": "power_user"})
    assert made.status_code == 201, made.text
    assert (await http.delete(f"/bodhi/v1/tokens/{maker_id}", headers=admin)).status_code == 204
    assert_unauthenticated(await http.get("/v1/models", headers=bearer(maker)))
    assert (await http.get("/v1/models", headers=bearer(made.json()["token"]))).status_code == 200
    assert (await http.delete(f"/bodhi/v1/tokens/{made.json()['id']}", headers=admin)).status_code == 204


async def test_users_management_rules(http: httpx.AsyncClient, admin: dict[str, str]) -> None:
    manager_id, manager_name = await create_user(http, admin, "manager")
    other_admin_id, _ = await create_user(http, admin, "admin")
    user_id, user_name = await create_user(http, admin, "power_user")
    manager = await login(http, manager_name, PASSWORD)

    listed = await http.get("/bodhi/v1/users", headers=manager)
    assert listed.status_code == 200, listed.text
    assert {u["id"] for u in listed.json()["data"]} >= {manager_id, other_admin_id, user_id}
    fields = {"id", "username", "role", "allowed_models", *LIMIT_FIELDS, "budget_spent"}
    assert all(set(u) == fields for u in listed.json()["data"])

    as_admin = {"username": f"would-be-admin-{uuid.uuid4().hex[:6]}", "password": PASSWORD, "role": "admin"}
    assert_error(await http.post("/bodhi/v1/users", headers=manager, json=as_admin), 403, "permission_error")
    await create_user(http, manager, "power_user")  # at or below their own role is fine
    promote = await http.put(f"/bodhi/v1/users/{user_id}/role", headers=manager, json={"role": "admin"})
    assert_error(promote, 403, "permission_error")
    demote_admin = await http.put(f"/bodhi/v1/users/{other_admin_id}/role", headers=manager, json={"role": "user"})
    assert_error(demote_admin, 403, "permission_error")
    assert_error(await http.delete(f"/bodhi/v1/users/{other_admin_id}", headers=manager), 403, "permission_error")
    assert_error(await http.delete(f"/bodhi/v1/users/{manager_id}", headers=manager), 403, "permission_error")
    own_role = await http.put(f"/bodhi/v1/users/{manager_id}/role", headers=manager, json={"role": "admin"})
    assert_error(own_role, 403, "permission_error")
    missing = await http.put(f"/bodhi/v1/users/{uuid.uuid4()}/role", headers=manager, json={"role": "user"})
    assert_error(missing, 404, "invalid_request_error")

    demoted = await http.put(f"/bodhi/v1/users/{user_id}/role", headers=admin, json={"role": "user"})
    assert demoted.status_code == 200, demoted.text
    assert demoted.json() == {"id": user_id, "username": user_name, "role": "user"}
    roles = {u["id"]: u["role"] for u in (await http.get("/bodhi/v1/users", headers=admin)).json()["data"]}
    assert roles[user_id] == "user"
    assert roles[other_admin_id] == "admin"  # every refused change left it alone

    duplicate = {"username": user_name.upper(), "password": PASSWORD, "role": "user"}
    assert_error(await http.post("/bodhi/v1/users", headers=admin, json=duplicate), 409, "invalid_request_error")

    plain = await login(http, user_name, PASSWORD)
    assert_error(await http.get("/bodhi/v1/users", headers=plain), 403, "permission_error", "insufficient_role")


async def test_role_change_and_delete_end_sessions_and_disable_tokens_at_once(
    http: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    changed_id, changed_name = await create_user(http, admin, "power_user")
    changed = await login(http, changed_name, PASSWORD)
    _, changed_token = await create_token(http, changed, "user")
    deleted_id, deleted_name = await create_user(http, admin, "user")
    deleted = await login(http, deleted_name, PASSWORD)
    _, deleted_token = await create_token(http, deleted, "user")
    for credentials in (changed, bearer(changed_token), deleted, bearer(deleted_token)):
        assert (await http.get("/v1/models", headers=credentials)).status_code == 200

    response = await http.put(f"/bodhi/v1/users/{changed_id}/role", headers=admin, json={"role": "manager"})
    assert response.status_code == 200, response.text
    assert_unauthenticated(await http.get("/bodhi/v1/user", headers=changed))
    assert_unauthenticated(await http.get("/v1/models", headers=bearer(changed_token)))

    response = await http.delete(f"/bodhi/v1/users/{deleted_id}", headers=admin)
    assert response.status_code == 204, response.text
    assert_unauthenticated(await http.get("/bodhi/v1/user", headers=deleted))
    assert_unauthenticated(await http.get("/v1/models", headers=bearer(deleted_token)))
    assert_error(await http.delete(f"/bodhi/v1/users/{deleted_id}", headers=admin), 404, "invalid_request_error")
    gone = await http.post("/bodhi/v1/auth/login", json={"username": deleted_name, "password": PASSWORD})
    assert_unauthenticated(gone)

    again = await login(http, changed_name, PASSWORD)  # a new session carries the new role
    assert (await http.get("/bodhi/v1/user", headers=again)).json()["role"] == "manager"
    tokens = (await http.get("/bodhi/v1/tokens", headers=again)).json()["data"]
    assert [t["status"] for t in tokens] == ["inactive"]


async def test_tokens_scope_listing_and_updates(http: httpx.AsyncClient, admin: dict[str, str]) -> None:
    _, username = await create_user(http, admin, "user")
    owner = await login(http, username, PASSWORD)
    _, other_name = await create_user(http, admin, "user")
    other = await login(http, other_name, PASSWORD)

    too_high = await http.post("/bodhi/v1/tokens", headers=owner, json={"name": "x", "scope": "power_user"})
    assert_error(too_high, 403, "permission_error", "insufficient_role")
    created = await http.post("/bodhi/v1/tokens", headers=owner, json={"name": "laptop", "scope": "user"})
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"id", "name", "token", "expires_at", "allowed_models", *LIMIT_FIELDS}
    token_id, token = created.json()["id"], created.json()["token"]
    assert token.startswith("bodhiapp_")
    assert len(token) == len("bodhiapp_") + 43 + 6

    assert (await http.get("/v1/models", headers=bearer(token))).status_code == 200
    digest = hashlib.sha256(token.encode()).digest()
    hidden = (token, token[len("bodhiapp_") : -6], digest.hex(), base64.b64encode(digest).decode())
    deadline = time.monotonic() + 5
    while True:
        listed = await http.get("/bodhi/v1/tokens", headers=owner)
        assert listed.status_code == 200, listed.text
        (entry,) = listed.json()["data"]
        if entry["last_used_at"] is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert set(entry) == TOKEN_FIELDS
    assert entry["id"] == token_id
    assert entry["scope"] == "user"
    assert entry["status"] == "active"
    assert entry["last_used_at"] is not None  # the use was recorded
    assert not any(secret in listed.text for secret in hidden)

    renamed = await http.put(f"/bodhi/v1/tokens/{token_id}", headers=owner, json={"name": "desktop"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["status"]) == ("desktop", "active")
    assert not any(secret in renamed.text for secret in hidden)
    bad = await http.put(f"/bodhi/v1/tokens/{token_id}", headers=owner, json={"status": "revoked"})
    assert_error(bad, 400, "invalid_request_error")

    for stranger in (other, admin):  # only the owner sees or changes a token
        theirs = (await http.get("/bodhi/v1/tokens", headers=stranger)).json()["data"]
        assert token_id not in {t["id"] for t in theirs}
        hijack = await http.put(f"/bodhi/v1/tokens/{token_id}", headers=stranger, json={"status": "inactive"})
        assert_error(hijack, 404, "invalid_request_error")
        assert_error(await http.delete(f"/bodhi/v1/tokens/{token_id}", headers=stranger), 404, "invalid_request_error")
    assert (await http.get("/v1/models", headers=bearer(token))).status_code == 200

    off = await http.put(f"/bodhi/v1/tokens/{token_id}", headers=owner, json={"status": "inactive"})
    assert off.status_code == 200, off.text
    assert (off.json()["name"], off.json()["status"]) == ("desktop", "inactive")
    assert_unauthenticated(await http.get("/v1/models", headers=bearer(token)))
    on = await http.put(f"/bodhi/v1/tokens/{token_id}", headers=owner, json={"status": "active"})
    assert on.json()["status"] == "active"
    assert (await http.get("/v1/models", headers=bearer(token))).status_code == 200

    assert (await http.delete(f"/bodhi/v1/tokens/{token_id}", headers=owner)).status_code == 204
    assert_unauthenticated(await http.get("/v1/models", headers=bearer(token)))
    assert (await http.get("/bodhi/v1/tokens", headers=owner)).json()["data"] == []
    assert_error(await http.delete(f"/bodhi/v1/tokens/{token_id}", headers=owner), 404, "invalid_request_error")


async def test_secrets_never_reach_responses_or_logs(
    http: httpx.AsyncClient, admin: dict[str, str], gateway: Gateway
) -> None:
    """Runs last in this module: it checks every response body the module received."""
    password = f"Planted-pa55-{uuid.uuid4().hex}"
    user_id, username = await create_user(http, admin, "power_user", password=password)
    await http.post("/bodhi/v1/auth/login", json={"username": username, "password": password + "-wrong"})
    await http.post("/bodhi/v1/auth/login", json={"username": f"no-{username}", "password": password})
    await http.post("/bodhi/v1/users", headers=admin, json={"username": username, "password": password, "role": "user"})
    await http.post("/bodhi/v1/users", headers=admin, json={"username": "x y", "password": password, "role": "user"})
    owner = await login(http, username, password)
    _, token = await create_token(http, owner, "power_user")
    issued_at = len(RECORDED.bodies) - 1  # the one response that carries the token, by design
    await http.get("/bodhi/v1/tokens", headers=owner)
    await http.get("/v1/models", headers=bearer(token))
    await http.get("/bodhi/v1/user", headers=bearer(token))
    await http.get("/v1/models", headers=bearer(token[:-1] + ("A" if token[-1] != "A" else "B")))
    await http.put(f"/bodhi/v1/users/{user_id}/role", headers=admin, json={"role": "user"})
    await http.get("/bodhi/v1/users", headers=admin)

    assert token in RECORDED.bodies[issued_at][1]
    leaks = [
        (where, secret[:12])
        for i, (where, body) in enumerate(RECORDED.bodies)
        for secret in (password, ADMIN_PASSWORD, "$argon2", *([] if i == issued_at else [token]))
        if secret in body
    ]
    assert leaks == []
    logs = gateway.logs()
    assert "Application startup complete" in logs  # the logs are there to be read
    for secret in (password, ADMIN_PASSWORD, token, token[len("bodhiapp_") : -6], "$argon2"):
        assert secret not in logs
