"""Team governance in-process: tokens that expire, tokens and users limited to some models (``auth.grants``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bodhi_api.auth import principal as principal_module
from bodhi_api.auth.api_tokens import parse_token
from bodhi_api.auth.grants import ModelGrant, allows, covers
from bodhi_api.auth.limits import LIMIT_FIELDS
from bodhi_api.auth.roles import Role, TokenScope
from bodhi_api.auth.tokens import issue_token
from tests.inprocess.harness import Account, InProcessApp, assert_error
from tests.support.backing import new_name

API = "/bodhi/v1/models/api"
KEY = "sk-inprocess-" + "5" * 24
TOKENS = "/bodhi/v1/tokens"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
OPENAI_IDS = ["openai/gpt-4o", "openai/gpt-4o-mini"]
ANTHROPIC_IDS = ["anthropic/claude"]


async def serve_models(admin: Account) -> None:
    """Two API models: ``openai/gpt-4o``, ``openai/gpt-4o-mini`` and ``anthropic/claude``."""
    for name, prefix, models in (
        ("OpenAI", "openai/", ["gpt-4o", "gpt-4o-mini"]),
        ("Anthropic", "anthropic/", ["claude"]),
    ):
        body = {"name": name, "base_url": f"https://api.{name.lower()}.example.com/v1", "api_key": KEY}
        created = await admin.client.post(API, json=body | {"prefix": prefix, "models": models})
        assert created.status_code == 201, created.text


async def listed(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/v1/models")
    assert response.status_code == 200, response.text
    return sorted(m["id"] for m in response.json()["data"])


async def create_token(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    created = await client.post(TOKENS, json={"name": new_name("t"), **body})
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    return answer


def assert_not_allowed(response: httpx.Response, model: str) -> str:
    error = assert_error(response, 403, "permission_error", "model_not_allowed")
    assert f"`{model}`" in error["message"]
    assert error["param"] == "model"
    message: str = error["message"]
    return message


# The rules


@pytest.mark.parametrize(
    ("patterns", "model", "allowed"),
    [
        (None, "anything", True),
        ([], "anything", False),
        (["openai/*"], "openai/gpt-4o", True),
        (["openai/*"], "openai/", True),
        (["openai/*"], "OpenAI/gpt-4o", False),  # ids are case-sensitive
        (["openai/*"], "azure/openai/gpt-4o", False),
        (["*/gpt-4o"], "azure/openai/gpt-4o", True),  # `*` crosses `/`
        (["gpt-4o"], "gpt-4o-mini", False),
        (["gpt-?o", "a.b"], "gpt-4o", False),  # only `*` is special
        (["gpt-?o", "a.b"], "gpt-?o", True),
        (["a.b"], "axb", False),
        (["[ab]*"], "a1", False),
        (["*mini", "x"], "gpt-4o-mini", True),
        (["*"], "", True),
    ],
)
def test_patterns(patterns: list[str] | None, model: str, allowed: bool) -> None:
    assert allows(patterns, model) is allowed


def test_a_grant_is_the_intersection_and_covers_is_containment() -> None:
    grant = ModelGrant(user=("openai/*", "local"), token=("openai/gpt-4o", "local", "anthropic/*"))
    assert [m for m in ("openai/gpt-4o", "openai/o1", "local", "anthropic/claude") if grant.allows(m)] == [
        "openai/gpt-4o",
        "local",
    ]
    assert ModelGrant().unlimited
    assert not grant.unlimited
    assert covers(None, None)
    assert covers(None, ["x"])
    assert not covers(["openai/*"], None)
    assert covers(["openai/*"], ["openai/gpt-*", "openai/o1", "openai/*"])
    assert not covers(["openai/*"], ["openai*"])
    assert not covers(["openai/gpt-*"], ["openai/*"])
    assert covers(["*-mini"], ["gpt-*-mini"])
    assert not covers(["gpt-*"], ["*-mini"])


# Expiry


async def test_a_token_expires_with_a_401_that_says_when(bodhi: InProcessApp, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    created = await create_token(owner, expires_in_days=7)
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=7) - timedelta(minutes=1) < expires_at - datetime.now(UTC) <= timedelta(days=7)
    as_token = bodhi.client(token=created["token"])
    assert (await as_token.get("/v1/models")).status_code == 200
    parsed = parse_token(created["token"])
    assert parsed is not None
    assert bodhi.resources.token_cache.get(parsed.token_hash) is not None  # verified once, now from the cache

    # Eight days on, the cached verification is refused too.
    later = datetime.now(UTC) + timedelta(days=8)
    monkeypatch.setattr(principal_module, "now_utc", lambda: later)
    assert bodhi.resources.token_cache.get(parsed.token_hash) is not None
    expired = await as_token.get("/v1/models")
    error = assert_error(expired, 401, "authentication_error", "token_expired")
    assert f"expired at {expires_at.strftime('%Y-%m-%d %H:%M:%S')} UTC" in error["message"]
    monkeypatch.undo()
    assert (await as_token.get("/v1/models")).status_code == 200


async def test_a_token_past_its_expiry_in_the_database_is_refused(bodhi: InProcessApp) -> None:
    user = await bodhi.create_user(Role.USER)
    past = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    token_id, token = await issue_token(bodhi.db, user_id=user.id, name="old", scope=TokenScope.USER, expires_at=past)

    refused = await bodhi.client(token=token).post("/v1/chat/completions", json={"model": "x", **CHAT})

    error = assert_error(refused, 401, "authentication_error", "token_expired")
    assert "expired at 2024-05-01 08:30:00 UTC" in error["message"]
    await bodhi.resources.drain()
    assert await bodhi.db.fetchval("SELECT last_used_at FROM api_tokens WHERE id = $1", uuid.UUID(token_id)) is None
    (entry,) = (await (await bodhi.session_client(user)).get(TOKENS)).json()["data"]
    assert (entry["expires_at"], entry["expired"], entry["status"]) == (past.isoformat(), True, "active")


async def test_the_token_list_shows_expiry_last_use_and_models(bodhi: InProcessApp) -> None:
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    limited = await create_token(owner, expires_at=at.isoformat(), allowed_models=["openai/*", " openai/* "])
    plain = await create_token(owner)
    assert (limited["expires_at"], limited["allowed_models"]) == (at.isoformat(), ["openai/*"])
    assert (plain["expires_at"], plain["allowed_models"]) == (None, None)
    assert (await bodhi.client(token=limited["token"]).get("/v1/models")).status_code == 200
    await bodhi.resources.drain()  # the use is recorded off the request path

    entries = {e["id"]: e for e in (await owner.get(TOKENS)).json()["data"]}

    used, unused = entries[limited["id"]], entries[plain["id"]]
    assert set(used) == {
        "id",
        "name",
        "scope",
        "status",
        "created_at",
        "updated_at",
        "last_used_at",
        "expires_at",
        "expired",
        "allowed_models",
        *LIMIT_FIELDS,
        "budget_spent",  # null: no budget
    }
    assert used["budget_spent"] is None
    assert used["last_used_at"] is not None
    assert (used["expires_at"], used["expired"], used["allowed_models"]) == (at.isoformat(), False, ["openai/*"])
    assert (unused["last_used_at"], unused["expires_at"], unused["allowed_models"]) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 3651}, "expires_in_days"),
        ({"expires_in_days": "7"}, "expires_in_days"),
        ({"expires_in_days": True}, "expires_in_days"),
        ({"expires_at": 1900000000}, "expires_at"),
        ({"expires_at": "1900000000"}, "expires_at"),
        ({"expires_at": "2099-01-01T00:00:00"}, "expires_at"),  # no offset
        ({"expires_at": "2099-02-30T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),  # past
        ({"expires_at": "9999-01-01T00:00:00Z"}, "expires_at"),  # too far
        ({"expires_in_days": 1, "expires_at": "2099-01-01T00:00:00Z"}, "expires_at"),
        ({"allowed_models": ["ok", ""]}, "allowed_models"),
        ({"allowed_models": ["a\nb"]}, "allowed_models"),
        ({"allowed_models": "openai/*"}, "allowed_models"),
        ({"allowed_models": [f"m{i}" for i in range(257)]}, "allowed_models"),
    ],
)
async def test_token_limits_are_checked_at_creation(bodhi: InProcessApp, body: dict[str, Any], param: str) -> None:
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))

    refused = await owner.post(TOKENS, json={"name": "bad", **body})

    error = assert_error(refused, 400, "invalid_request_error")
    assert error["param"].split(".")[0] == param, error  # `allowed_models.1`: the item
    assert (await owner.get(TOKENS)).json()["data"] == []


# Model grants


async def test_a_token_limited_to_a_pattern_lists_and_uses_only_those_models(
    bodhi: InProcessApp, admin: Account
) -> None:
    await serve_models(admin)
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    limited = bodhi.client(token=(await create_token(owner, allowed_models=["openai/*"]))["token"])
    unlimited = bodhi.client(token=(await create_token(owner))["token"])

    assert await listed(limited) == OPENAI_IDS
    assert await listed(unlimited) == sorted(OPENAI_IDS + ANTHROPIC_IDS)
    assert sorted(m["id"] for m in (await limited.get("/bodhi/v1/models")).json()["data"]) == OPENAI_IDS
    assert (await limited.get("/v1/models/openai/gpt-4o")).json()["id"] == "openai/gpt-4o"
    assert_not_allowed(await limited.get("/v1/models/anthropic/claude"), "anthropic/claude")
    assert_not_allowed(await limited.get("/v1/models/no-such-model"), "no-such-model")  # no hint of what exists

    jobs_before = await bodhi.redis_keys()
    for path, body in (
        ("/v1/chat/completions", {"model": "anthropic/claude", **CHAT}),
        ("/v1/chat/completions", {"model": "anthropic/claude", "stream": True, **CHAT}),
        ("/v1/completions", {"model": "anthropic/claude", "prompt": "hi"}),
        ("/v1/embeddings", {"model": "anthropic/claude", "input": "hi"}),
    ):
        message = assert_not_allowed(await limited.post(path, json=body), "anthropic/claude")
        assert "this API token" in message
    assert await bodhi.redis_keys() == jobs_before  # nothing was queued
    # Allowed ones go on to the queue (no worker runs in-process, so: 503).
    allowed = await limited.post("/v1/chat/completions", json={"model": "openai/gpt-4o", **CHAT})
    assert_error(allowed, 503, "api_error", "no_worker_available")
    assert_error(
        await unlimited.post("/v1/chat/completions", json={"model": "anthropic/claude", **CHAT}),
        503,
        "api_error",
        "no_worker_available",
    )


async def test_the_owner_changes_a_tokens_models_at_once(bodhi: InProcessApp, admin: Account) -> None:
    await serve_models(admin)
    owner_user = await bodhi.create_user(Role.USER)
    owner = await bodhi.session_client(owner_user)
    created = await create_token(owner, allowed_models=["anthropic/*"])
    as_token = bodhi.client(token=created["token"])
    assert await listed(as_token) == ANTHROPIC_IDS  # now cached

    patched = await owner.patch(f"{TOKENS}/{created['id']}", json={"allowed_models": ["openai/gpt-4o"]})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["allowed_models"], patched.json()["name"]) == (["openai/gpt-4o"], created["name"])
    assert await listed(as_token) == ["openai/gpt-4o"]  # the cached verification was dropped

    renamed = await owner.patch(f"{TOKENS}/{created['id']}", json={"name": "renamed"})  # the models stay
    assert (renamed.json()["name"], renamed.json()["allowed_models"]) == ("renamed", ["openai/gpt-4o"])
    reset = await owner.patch(f"{TOKENS}/{created['id']}", json={"allowed_models": None})
    assert reset.json()["allowed_models"] is None
    assert await listed(as_token) == sorted(OPENAI_IDS + ANTHROPIC_IDS)

    # Only its owner, and only from a session (or an admin's token): never a token of a user.
    stranger = await bodhi.session_client(await bodhi.create_user(Role.ADMIN))
    theirs = await stranger.patch(f"{TOKENS}/{created['id']}", json={"allowed_models": []})
    assert_error(theirs, 404, "invalid_request_error")
    by_token = await as_token.patch(f"{TOKENS}/{created['id']}", json={"allowed_models": None})
    assert_error(by_token, 403, "permission_error", "insufficient_role")
    by_admin_token = await admin.client.patch(f"{TOKENS}/{created['id']}", json={"allowed_models": None})
    assert_error(by_admin_token, 404, "invalid_request_error")  # an admin's token manages the admin's own
    assert_error(await owner.patch(f"{TOKENS}/not-a-uuid", json={}), 404, "invalid_request_error")
    bad = await owner.patch(f"{TOKENS}/{created['id']}", json={"allowed_models": [""]})
    assert assert_error(bad, 400, "invalid_request_error")["param"] == "allowed_models.0"


async def test_a_request_must_be_allowed_by_the_user_and_the_token(bodhi: InProcessApp, admin: Account) -> None:
    await serve_models(admin)
    manager = await bodhi.session_client(await bodhi.create_user(Role.MANAGER))
    user = await bodhi.create_user(Role.USER)
    browser = await bodhi.session_client(user)
    created = await create_token(browser, allowed_models=["openai/gpt-4o", "anthropic/*"])
    as_token = bodhi.client(token=created["token"])
    assert await listed(as_token) == sorted(["openai/gpt-4o", *ANTHROPIC_IDS])  # cached from here on

    granted = await manager.put(
        f"/bodhi/v1/users/{user.id}/models", json={"allowed_models": ["openai/*", "anthropic/claude"]}
    )

    assert granted.status_code == 200, granted.text
    assert granted.json() == {
        "id": str(user.id),
        "username": user.username,
        "role": "user",
        "allowed_models": ["openai/*", "anthropic/claude"],
        **dict.fromkeys(LIMIT_FIELDS),
    }
    assert await listed(browser) == sorted(OPENAI_IDS + ANTHROPIC_IDS)  # a session: the user's grant alone
    narrowed = await manager.put(f"/bodhi/v1/users/{user.id}/models", json={"allowed_models": ["openai/*"]})
    assert narrowed.status_code == 200, narrowed.text
    assert await listed(browser) == OPENAI_IDS
    assert await listed(as_token) == ["openai/gpt-4o"]  # both: at once, though the token was cached
    by_user = assert_not_allowed(
        await as_token.post("/v1/chat/completions", json={"model": "anthropic/claude", **CHAT}), "anthropic/claude"
    )
    assert "your account" in by_user
    by_token = assert_not_allowed(
        await as_token.post("/v1/chat/completions", json={"model": "openai/gpt-4o-mini", **CHAT}),
        "openai/gpt-4o-mini",
    )
    assert "this API token" in by_token
    assert_not_allowed(
        await browser.post("/v1/chat/completions", json={"model": "anthropic/claude", **CHAT}), "anthropic/claude"
    )
    nothing = await manager.put(f"/bodhi/v1/users/{user.id}/models", json={"allowed_models": []})
    assert nothing.json()["allowed_models"] == []
    assert await listed(browser) == []
    everything = await manager.put(f"/bodhi/v1/users/{user.id}/models", json={"allowed_models": None})
    assert everything.json()["allowed_models"] is None
    assert await listed(as_token) == sorted(["openai/gpt-4o", *ANTHROPIC_IDS])
    users = {u["id"]: u for u in (await manager.get("/bodhi/v1/users")).json()["data"]}
    assert users[str(user.id)]["allowed_models"] is None


async def test_who_may_change_a_users_models(bodhi: InProcessApp) -> None:
    power_user = await bodhi.create_user(Role.POWER_USER)
    power_browser = await bodhi.session_client(power_user)
    limited_manager_user = await bodhi.create_user(Role.MANAGER)
    manager = await bodhi.session_client(await bodhi.create_user(Role.MANAGER))
    admin_user = await bodhi.create_user(Role.ADMIN)
    admin = await bodhi.session_client(admin_user)

    # A power user cannot widen (or change) their own grant, nor anyone's.
    assert (
        await manager.put(f"/bodhi/v1/users/{power_user.id}/models", json={"allowed_models": ["local-*"]})
    ).status_code == 200
    for target in (power_user.id, limited_manager_user.id):
        own = await power_browser.put(f"/bodhi/v1/users/{target}/models", json={"allowed_models": None})
        assert_error(own, 403, "permission_error", "insufficient_role")
    assert await bodhi.db.fetchval("SELECT allowed_models FROM users WHERE id = $1", power_user.id) == ["local-*"]

    # Nobody changes their own, or a role above theirs.
    self_change = await admin.put(f"/bodhi/v1/users/{admin_user.id}/models", json={"allowed_models": None})
    assert_error(self_change, 403, "permission_error")
    above = await manager.put(f"/bodhi/v1/users/{admin_user.id}/models", json={"allowed_models": ["x"]})
    assert_error(above, 403, "permission_error")

    # A manager whose own models are limited grants only within them.
    granted = await admin.put(
        f"/bodhi/v1/users/{limited_manager_user.id}/models", json={"allowed_models": ["openai/*"]}
    )
    assert granted.status_code == 200, granted.text
    limited_manager = await bodhi.session_client(limited_manager_user)
    within = await limited_manager.put(
        f"/bodhi/v1/users/{power_user.id}/models", json={"allowed_models": ["openai/gpt-*", "openai/o1"]}
    )
    assert within.status_code == 200, within.text
    for wider in (None, ["*"], ["openai*"], ["anthropic/claude"]):
        refused = await limited_manager.put(f"/bodhi/v1/users/{power_user.id}/models", json={"allowed_models": wider})
        assert assert_error(refused, 403, "permission_error")["param"] == "allowed_models"
    create_wide = await limited_manager.post(
        "/bodhi/v1/users", json={"username": new_name("u"), "password": "pa55word-long", "role": "user"}
    )
    assert_error(create_wide, 403, "permission_error")

    # Managers may set it at creation too, and see it in the list.
    created = await manager.post(
        "/bodhi/v1/users",
        json={"username": new_name("u"), "password": "pa55word-long", "role": "user", "allowed_models": ["a/*"]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["allowed_models"] == ["a/*"]
    listed_users = {u["id"]: u for u in (await manager.get("/bodhi/v1/users")).json()["data"]}
    assert listed_users[created.json()["id"]]["allowed_models"] == ["a/*"]
    assert listed_users[str(power_user.id)]["allowed_models"] == ["openai/gpt-*", "openai/o1"]
    missing = await manager.put(f"/bodhi/v1/users/{uuid.uuid4()}/models", json={"allowed_models": None})
    assert_error(missing, 404, "invalid_request_error")
    no_field = await manager.put(f"/bodhi/v1/users/{power_user.id}/models", json={})
    assert assert_error(no_field, 400, "invalid_request_error")["param"] == "allowed_models"


async def test_the_other_inference_formats_hold_to_the_grant_too(bodhi: InProcessApp, admin: Account) -> None:
    """``/v1/responses`` and ``/v1/messages`` run through ``inference.run_inference`` as well."""
    await serve_models(admin)
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    token = (await create_token(owner, allowed_models=["openai/*"]))["token"]
    limited = bodhi.client(token=token)

    responses = await limited.post("/v1/responses", json={"model": "anthropic/claude", "input": "hi"})
    assert_not_allowed(responses, "anthropic/claude")
    messages_body = {"model": "anthropic/claude", "max_tokens": 16, **CHAT}
    for client in (limited, bodhi.client(headers={"x-api-key": token})):
        messages = await client.post("/v1/messages", json=messages_body)
        assert messages.status_code == 403, messages.text
        body = messages.json()  # in Anthropic's shape there
        assert (body["type"], body["error"]["type"]) == ("error", "permission_error")
        assert "`anthropic/claude`" in body["error"]["message"]
    allowed = await limited.post("/v1/responses", json={"model": "openai/gpt-4o", "input": "hi"})
    assert allowed.status_code == 503, allowed.text  # past the grant: no worker in-process
