"""Setup, login, sessions, users and tokens in-process: the account routes, each test on an empty schema."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import httpx

from bodhi_api.auth.limits import LIMIT_FIELDS
from bodhi_api.auth.login_limit import FREE_USER_FAILURES
from bodhi_api.auth.roles import Role, TokenScope
from bodhi_api.auth.sessions import COOKIE_NAME
from tests.inprocess.harness import PASSWORD, SERVER, Account, InProcessApp, assert_error

LOGIN = "/bodhi/v1/auth/login"


def assert_unauthenticated(response: httpx.Response) -> None:
    assert_error(response, 401, "authentication_error", "invalid_api_key")


async def test_setup_creates_exactly_one_admin_under_concurrent_calls(bodhi: InProcessApp) -> None:
    anonymous = bodhi.client()
    before = await anonymous.get("/bodhi/v1/info")
    assert before.json() == {"version": "0.1.0", "status": "setup"}
    assert (await anonymous.get("/ui/setup/")).status_code == 200

    names = [f"first-{i}" for i in range(4)]
    answers = await asyncio.gather(
        *(anonymous.post("/bodhi/v1/setup", json={"username": n, "password": PASSWORD}) for n in names)
    )

    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        assert_error(refused, 409, "invalid_request_error", "conflict")
    created = next(a for a in answers if a.status_code == 201).json()
    assert created["role"] == "admin"
    assert [(str(r["id"]), r["role"]) for r in await bodhi.db.fetch("SELECT id, role FROM users")] == [
        (created["id"], "admin")
    ]
    assert (await anonymous.get("/bodhi/v1/info")).json()["status"] == "ready"
    wizard = await anonymous.get("/ui/setup/")
    assert (wizard.status_code, wizard.headers["location"]) == (303, "/ui/login/")
    logged_in = await anonymous.post(LOGIN, json={"username": created["username"], "password": PASSWORD})
    assert logged_in.status_code == 200, logged_in.text


async def test_setup_refuses_bad_credentials_and_cross_site_calls(bodhi: InProcessApp) -> None:
    anonymous = bodhi.client()
    short = await anonymous.post("/bodhi/v1/setup", json={"username": "admin", "password": "short"})
    assert assert_error(short, 400, "invalid_request_error")["param"] == "password"
    spaced = await anonymous.post("/bodhi/v1/setup", json={"username": "a b", "password": PASSWORD})
    assert assert_error(spaced, 400, "invalid_request_error")["param"] == "username"
    nul = await anonymous.post("/bodhi/v1/setup", json={"username": "a\u0000b", "password": PASSWORD})
    assert_error(nul, 400, "invalid_request_error")
    evil = await anonymous.post(
        "/bodhi/v1/setup", json={"username": "admin", "password": PASSWORD}, headers={"Origin": "http://evil.example"}
    )
    assert_error(evil, 403, "permission_error", "cross_origin_request")
    assert (await anonymous.get("/bodhi/v1/info")).json()["status"] == "setup"


async def test_login_sets_a_session_cookie_and_logout_ends_it(bodhi: InProcessApp) -> None:
    """Login verifies the password with argon2: refused on the event loop here, so this passes only off it."""
    user = await bodhi.create_user(Role.USER)
    browser = bodhi.client()

    wrong = await browser.post(LOGIN, json={"username": user.username, "password": "not-the-password"})
    assert_unauthenticated(wrong)
    unknown = await browser.post(LOGIN, json={"username": f"nobody-{user.username}", "password": PASSWORD})
    assert_unauthenticated(unknown)
    assert unknown.json()["error"]["message"] == wrong.json()["error"]["message"]  # no username enumeration
    assert COOKIE_NAME not in browser.cookies

    right = await browser.post(LOGIN, json={"username": user.username.upper(), "password": PASSWORD})
    assert right.status_code == 200, right.text
    assert right.json() == {"id": str(user.id), "username": user.username, "role": "user"}
    attributes = [part.strip().lower() for part in right.headers["set-cookie"].split(";")]
    assert attributes[0].startswith(f"{COOKIE_NAME}=")
    assert {"httponly", "samesite=lax", "path=/"} <= set(attributes)
    assert "secure" not in attributes  # plain http: a Secure cookie would never be sent back
    session_id = right.cookies[COOKIE_NAME]
    digest = hashlib.sha256(session_id.encode()).hexdigest()
    assert await bodhi.resources.redis.get(bodhi.resources.keys.session(digest)) == str(user.id).encode()
    assert not any(session_id in key for key in await bodhi.redis_keys())  # only its digest is stored

    assert (await browser.get("/bodhi/v1/user")).json()["username"] == user.username
    assert_unauthenticated(await bodhi.client().get("/bodhi/v1/user"))
    forged = bodhi.client()
    forged.cookies.set(COOKIE_NAME, "made-up-session-id")
    assert_unauthenticated(await forged.get("/bodhi/v1/user"))

    logout = await browser.post("/bodhi/v1/auth/logout")
    assert logout.status_code == 204, logout.text
    assert COOKIE_NAME not in browser.cookies  # the response deleted it
    replay = bodhi.client()
    replay.cookies.set(COOKIE_NAME, session_id)
    assert_unauthenticated(await replay.get("/bodhi/v1/user"))
    assert await bodhi.resources.redis.get(bodhi.resources.keys.session(digest)) is None


async def test_login_bodies_are_checked_before_any_password_is(bodhi: InProcessApp) -> None:
    anonymous = bodhi.client()
    empty = await anonymous.post(LOGIN, json={"username": "", "password": PASSWORD})
    assert assert_error(empty, 400, "invalid_request_error")["param"] == "username"
    huge = await anonymous.post(LOGIN, json={"username": "x", "password": "p" * 5000})
    assert assert_error(huge, 400, "invalid_request_error")["param"] == "password"
    form = await anonymous.post(LOGIN, content=b"username=x&password=y", headers={"Content-Type": "text/plain"})
    assert "Content-Type: application/json" in assert_error(form, 400, "invalid_request_error")["message"]
    assert await bodhi.redis_keys() == []  # nothing counted against the login limit


async def test_repeated_failures_slow_a_username_down(bodhi: InProcessApp) -> None:
    user = await bodhi.create_user(Role.USER)
    guesser = bodhi.client()
    for _ in range(FREE_USER_FAILURES):
        assert_unauthenticated(await guesser.post(LOGIN, json={"username": user.username, "password": "guess-123"}))

    refused = await guesser.post(LOGIN, json={"username": user.username, "password": PASSWORD})

    assert_error(refused, 429, "rate_limit_error", "rate_limit_exceeded")
    assert int(refused.headers["retry-after"]) >= 1
    other = await bodhi.create_user(Role.USER)  # another username is not held up by it
    assert (await guesser.post(LOGIN, json={"username": other.username, "password": PASSWORD})).status_code == 200


async def test_cookie_state_changes_must_be_same_origin(bodhi: InProcessApp, admin: Account) -> None:
    browser = await bodhi.session_client(await bodhi.create_user(Role.USER))
    body = {"name": "csrf", "scope": "user"}

    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        refused = await browser.post("/bodhi/v1/tokens", headers=headers, json=body)
        assert_error(refused, 403, "permission_error", "cross_origin_request")
    assert (await browser.get("/bodhi/v1/tokens")).json()["data"] == []  # nothing refused was created
    same = await browser.post(
        "/bodhi/v1/tokens", headers={"Origin": SERVER, "Sec-Fetch-Site": "same-origin"}, json=body
    )
    assert same.status_code == 201, same.text

    # A bearer token is no ambient credential: the same-origin rule does not apply to it.
    by_token = await admin.client.post(
        "/bodhi/v1/tokens", headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, json=body
    )
    assert by_token.status_code == 201, by_token.text
    logout = await browser.post("/bodhi/v1/auth/logout", headers={"Origin": "http://evil.example"})
    assert_error(logout, 403, "permission_error", "cross_origin_request")
    assert (await browser.get("/bodhi/v1/user")).status_code == 200  # a foreign page cannot log us out


async def test_tokens_scope_listing_and_updates(bodhi: InProcessApp) -> None:
    owner_user = await bodhi.create_user(Role.USER)
    owner = await bodhi.session_client(owner_user)
    stranger = await bodhi.session_client(await bodhi.create_user(Role.ADMIN))

    too_high = await owner.post("/bodhi/v1/tokens", json={"name": "x", "scope": "power_user"})
    assert_error(too_high, 403, "permission_error", "insufficient_role")
    blank = await owner.post("/bodhi/v1/tokens", json={"name": "", "scope": "user"})
    assert assert_error(blank, 400, "invalid_request_error")["param"] == "name"
    created = await owner.post("/bodhi/v1/tokens", json={"name": "laptop"})
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"id", "name", "token", "expires_at", "allowed_models", *LIMIT_FIELDS}
    token_id, token = created.json()["id"], created.json()["token"]
    assert token.startswith("bodhiapp_")
    as_token = bodhi.client(token=token)

    assert (await as_token.get("/v1/models")).status_code == 200
    await bodhi.resources.drain()  # the use is recorded off the request path
    (entry,) = (await owner.get("/bodhi/v1/tokens")).json()["data"]
    assert set(entry) == {
        *("id", "name", "scope", "status", "created_at", "updated_at", "last_used_at"),
        *("expires_at", "expired", "allowed_models"),
        *LIMIT_FIELDS,
        "budget_spent",
    }
    assert (entry["id"], entry["scope"], entry["status"]) == (token_id, "user", "active")
    assert entry["last_used_at"] is not None
    assert token not in str(entry)

    renamed = await owner.put(f"/bodhi/v1/tokens/{token_id}", json={"name": "desktop"})
    assert (renamed.json()["name"], renamed.json()["status"]) == ("desktop", "active")
    assert_error(
        await owner.put(f"/bodhi/v1/tokens/{token_id}", json={"status": "revoked"}), 400, "invalid_request_error"
    )
    assert_error(await owner.put("/bodhi/v1/tokens/not-a-uuid", json={"name": "x"}), 404, "invalid_request_error")

    # Only the owner sees or changes a token, an admin included.
    assert token_id not in {t["id"] for t in (await stranger.get("/bodhi/v1/tokens")).json()["data"]}
    assert_error(
        await stranger.put(f"/bodhi/v1/tokens/{token_id}", json={"status": "inactive"}), 404, "invalid_request_error"
    )
    assert_error(await stranger.delete(f"/bodhi/v1/tokens/{token_id}"), 404, "invalid_request_error")

    off = await owner.put(f"/bodhi/v1/tokens/{token_id}", json={"status": "inactive"})
    assert off.json()["status"] == "inactive"
    assert_unauthenticated(await as_token.get("/v1/models"))  # at once: the token cache was cleared
    assert (await owner.put(f"/bodhi/v1/tokens/{token_id}", json={"status": "active"})).json()["status"] == "active"
    assert (await as_token.get("/v1/models")).status_code == 200

    assert (await owner.delete(f"/bodhi/v1/tokens/{token_id}")).status_code == 204
    assert_unauthenticated(await as_token.get("/v1/models"))
    assert_error(await owner.delete(f"/bodhi/v1/tokens/{token_id}"), 404, "invalid_request_error")
    assert (await owner.get("/bodhi/v1/tokens")).json()["data"] == []


async def test_only_sessions_and_admins_tokens_manage_tokens(bodhi: InProcessApp, admin: Account) -> None:
    manager = await bodhi.account(Role.MANAGER)
    attempts = [
        await manager.client.post("/bodhi/v1/tokens", json={"name": "spawned"}),
        await manager.client.get("/bodhi/v1/tokens"),
        await manager.client.delete(f"/bodhi/v1/tokens/{uuid.uuid4()}"),
    ]
    for refused in attempts:
        assert "log in" in assert_error(refused, 403, "permission_error")["message"]
    assert (await manager.client.get("/v1/models")).status_code == 200  # it still works for everything else

    made = await admin.client.post("/bodhi/v1/tokens", json={"name": "made", "scope": "power_user"})
    assert made.status_code == 201, made.text


async def test_bearer_credentials_that_are_not_tokens_are_401s(bodhi: InProcessApp, admin: Account) -> None:
    for authorization in ("Bearer", "Bearer nonsense", "Basic dXNlcjpwYXNz", f"Bearer {admin.token[:-1]}x"):
        response = await bodhi.client(headers={"Authorization": authorization}).get("/v1/models")
        assert_unauthenticated(response)
    missing = await bodhi.client().get("/v1/models")
    assert "Missing credentials" in assert_error(missing, 401, "authentication_error")["message"]


async def test_users_management_rules(bodhi: InProcessApp) -> None:
    admin = await bodhi.session_client(await bodhi.create_user(Role.ADMIN))
    manager_user = await bodhi.create_user(Role.MANAGER)
    manager = await bodhi.session_client(manager_user)
    other_admin = await bodhi.create_user(Role.ADMIN)
    target = await bodhi.create_user(Role.POWER_USER)

    listed = await manager.get("/bodhi/v1/users")
    assert listed.status_code == 200, listed.text
    assert {u["id"] for u in listed.json()["data"]} >= {str(manager_user.id), str(other_admin.id), str(target.id)}
    fields = {"id", "username", "role", "allowed_models", *LIMIT_FIELDS, "budget_spent"}
    assert all(set(u) == fields for u in listed.json()["data"])

    would_be = {"username": "would-be-admin", "password": PASSWORD, "role": "admin"}
    assert_error(await manager.post("/bodhi/v1/users", json=would_be), 403, "permission_error")
    created = await manager.post("/bodhi/v1/users", json={"username": "new-one", "password": PASSWORD, "role": "user"})
    assert created.status_code == 201, created.text  # hashed with argon2, off the loop
    assert created.json()["role"] == "user"
    assert_error(
        await manager.put(f"/bodhi/v1/users/{target.id}/role", json={"role": "admin"}), 403, "permission_error"
    )
    assert_error(
        await manager.put(f"/bodhi/v1/users/{other_admin.id}/role", json={"role": "user"}), 403, "permission_error"
    )
    assert_error(await manager.delete(f"/bodhi/v1/users/{other_admin.id}"), 403, "permission_error")
    assert_error(await manager.delete(f"/bodhi/v1/users/{manager_user.id}"), 403, "permission_error")
    assert_error(
        await manager.put(f"/bodhi/v1/users/{uuid.uuid4()}/role", json={"role": "user"}), 404, "invalid_request_error"
    )
    assert_error(await manager.delete("/bodhi/v1/users/not-a-uuid"), 404, "invalid_request_error")
    bad_role = await admin.put(f"/bodhi/v1/users/{target.id}/role", json={"role": "emperor"})
    assert assert_error(bad_role, 400, "invalid_request_error")["param"] == "role"

    demoted = await admin.put(f"/bodhi/v1/users/{target.id}/role", json={"role": "user"})
    assert demoted.json() == {"id": str(target.id), "username": target.username, "role": "user"}
    duplicate = {"username": "NEW-ONE", "password": PASSWORD, "role": "user"}
    assert_error(await admin.post("/bodhi/v1/users", json=duplicate), 409, "invalid_request_error", "conflict")

    plain = await bodhi.session_client(target)
    assert_error(await plain.get("/bodhi/v1/users"), 403, "permission_error", "insufficient_role")


async def test_role_change_and_delete_end_sessions_and_disable_tokens_at_once(bodhi: InProcessApp) -> None:
    admin = await bodhi.session_client(await bodhi.create_user(Role.ADMIN))
    changed_user = await bodhi.create_user(Role.POWER_USER)
    changed, changed_token = await bodhi.session_client(changed_user), await bodhi.create_token(changed_user)
    deleted_user = await bodhi.create_user(Role.USER)
    deleted, deleted_token = await bodhi.session_client(deleted_user), await bodhi.create_token(deleted_user)
    by_changed_token, by_deleted_token = bodhi.client(token=changed_token), bodhi.client(token=deleted_token)
    for client in (changed, deleted, by_changed_token, by_deleted_token):
        assert (await client.get("/v1/models")).status_code == 200

    assert (await admin.put(f"/bodhi/v1/users/{changed_user.id}/role", json={"role": "manager"})).status_code == 200
    assert_unauthenticated(await changed.get("/bodhi/v1/user"))
    assert_unauthenticated(await by_changed_token.get("/v1/models"))

    assert (await admin.delete(f"/bodhi/v1/users/{deleted_user.id}")).status_code == 204
    assert_unauthenticated(await deleted.get("/bodhi/v1/user"))
    assert_unauthenticated(await by_deleted_token.get("/v1/models"))
    assert_error(await admin.delete(f"/bodhi/v1/users/{deleted_user.id}"), 404, "invalid_request_error")

    again = await bodhi.session_client(changed_user)  # a new session carries the new role
    assert (await again.get("/bodhi/v1/user")).json()["role"] == "manager"
    assert [t["status"] for t in (await again.get("/bodhi/v1/tokens")).json()["data"]] == ["inactive"]


async def test_a_tokens_role_is_the_lower_of_its_scope_and_its_owner(bodhi: InProcessApp) -> None:
    owner = await bodhi.create_user(Role.ADMIN)
    low = bodhi.client(token=await bodhi.create_token(owner, TokenScope.USER))
    assert (await low.get("/bodhi/v1/user")).json()["role"] == "user"
    refused = await low.post("/bodhi/v1/models/api", json={"base_url": "https://api.example.com/v1", "models": ["m"]})
    assert_error(refused, 403, "permission_error", "insufficient_role")
