"""API models in-process: CRUD, validation errors, ownership (403 not_owner), sealing, and checks without a worker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster

from bodhi_api.auth.roles import Role
from bodhi_shared.crypto import SealedSecret, keyring, load_or_create_key_pair, open_bound
from tests.inprocess.conftest import AppFactory
from tests.inprocess.harness import Account, InProcessApp, allow_known_blocking, assert_error

API = "/bodhi/v1/models/api"
BASE_URL = "https://api.example.com/v1"
KEY = "sk-inprocess-" + "7" * 24


def api_model(**change: Any) -> dict[str, Any]:
    return {"name": "Example", "base_url": BASE_URL, "api_key": KEY, "models": ["gpt-x"]} | change


async def test_create_read_update_patch_delete(
    bodhi: InProcessApp, power_user: Account, user: Account, worker_keys_dir: Path
) -> None:
    created = await power_user.client.post(API, json=api_model(base_url=BASE_URL + "/", prefix="ex/"))
    assert created.status_code == 201, created.text
    saved = created.json()
    assert saved["base_url"] == BASE_URL  # a trailing slash is trimmed
    assert (saved["has_api_key"], saved["api_key_hint"], saved["editable"]) == (True, "sk-...7777", True)
    assert saved["created_by"] == str(power_user.user.id)
    assert KEY not in created.text
    api_model_id = saved["id"]

    # The key is sealed for the workers, for this row and URL: their private key opens it, the API holds none.
    row = await bodhi.db.fetchrow("SELECT sealed_key FROM api_models WHERE id = $1", uuid.UUID(api_model_id))
    assert row is not None
    private_key, _ = await asyncio.to_thread(load_or_create_key_pair, worker_keys_dir)
    sealed = SealedSecret.from_bytes(bytes(row["sealed_key"]))
    assert open_bound(sealed, private_keys=keyring(private_key), row=api_model_id, base_url=BASE_URL) == KEY

    # Everyone lists and reads API models (without keys); only the creator or a manager may edit them.
    listed = await user.client.get(API)
    assert [(m["id"], m["editable"]) for m in listed.json()["data"]] == [(api_model_id, False)]
    assert (await user.client.get(f"{API}/{api_model_id}")).json()["name"] == "Example"
    unified = (await user.client.get("/bodhi/v1/models")).json()["data"]
    assert unified == [
        {
            "id": "ex/gpt-x",
            "source": "api",
            "api_model_id": api_model_id,
            "api_model_name": "Example",
            "api_format": "openai",
            "base_url": BASE_URL,
        }
    ]
    assert (await user.client.get("/v1/models/ex/gpt-x")).json()["owned_by"] == "Example"

    put = await power_user.client.put(
        f"{API}/{api_model_id}", json={"name": "Renamed", "base_url": BASE_URL, "prefix": "ex/", "models": ["a", "b"]}
    )
    assert put.status_code == 200, put.text
    assert (put.json()["name"], put.json()["models"], put.json()["api_key_hint"]) == (
        "Renamed",
        ["a", "b"],
        "sk-...7777",
    )
    patched = await power_user.client.patch(f"{API}/{api_model_id}", json={"prefix": None, "models": ["c"]})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["prefix"], patched.json()["models"]) == ("Renamed", None, ["c"])
    assert [m["id"] for m in (await user.client.get("/v1/models")).json()["data"]] == ["c"]
    new_url = await power_user.client.patch(f"{API}/{api_model_id}", json={"base_url": "https://other.example.com/v1"})
    assert assert_error(new_url, 400, "invalid_request_error")["param"] == "api_key"  # a key is not sent elsewhere

    assert (await power_user.client.delete(f"{API}/{api_model_id}")).status_code == 204
    assert_error(await user.client.get(f"{API}/{api_model_id}"), 404, "invalid_request_error", "not_found")
    assert_error(await power_user.client.delete(f"{API}/{api_model_id}"), 404, "invalid_request_error")
    assert_error(await user.client.get(f"{API}/not-a-uuid"), 404, "invalid_request_error")
    assert await bodhi.db.fetchval("SELECT count(*) FROM api_models") == 0
    assert (await user.client.get("/v1/models")).json()["data"] == []


async def test_only_the_creator_or_a_manager_may_change_an_api_model(bodhi: InProcessApp, power_user: Account) -> None:
    created = await power_user.client.post(API, json=api_model())
    api_model_id = created.json()["id"]
    other = await bodhi.account(Role.POWER_USER)
    manager = await bodhi.session_client(await bodhi.create_user(Role.MANAGER))

    for refused in (
        await other.client.put(f"{API}/{api_model_id}", json={"base_url": BASE_URL, "models": ["x"]}),
        await other.client.patch(f"{API}/{api_model_id}", json={"name": "Mine now"}),
        await other.client.delete(f"{API}/{api_model_id}"),
        await other.client.post(f"{API}/test", json={"id": api_model_id, "model": "gpt-x"}),
        await other.client.post(f"{API}/fetch-models", json={"id": api_model_id}),
    ):
        error = assert_error(refused, 403, "permission_error", "not_owner")
        assert "`Example` was created by another user" in error["message"]
    assert (await other.client.get(f"{API}/{api_model_id}")).json()["editable"] is False

    by_manager = await manager.patch(f"{API}/{api_model_id}", json={"name": "Managed"})
    assert by_manager.status_code == 200, by_manager.text
    assert by_manager.json()["editable"] is True
    assert (await manager.delete(f"{API}/{api_model_id}")).status_code == 204


async def test_users_may_list_but_not_write(bodhi: InProcessApp, user: Account) -> None:
    assert (await user.client.get(API)).json() == {"data": []}
    assert (await user.client.get(f"{API}/formats")).json() == {"data": ["openai", "openai-responses", "anthropic"]}
    assert_error(await user.client.post(API, json=api_model()), 403, "permission_error", "insufficient_role")
    assert_error(await bodhi.client().get(API), 401, "authentication_error")


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"models": [f"m{i}" for i in range(51)]}, "models"),
        ({"models": []}, "models"),
        ({"models": ["a", "a"]}, "models"),
        ({"prefix": "has space/"}, "prefix"),
        ({"prefix": "p" * 33}, "prefix"),
        ({"base_url": "ftp://example.com/v1"}, "base_url"),
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": "https://user:pass@api.example.com/v1"}, "base_url"),
        ({"api_key": "sk-\nx"}, "api_key"),
        ({"api_format": "gemini"}, "api_format"),
        ({"extra_headers": {"Authorization": "Bearer sk-x"}}, "extra_headers"),
    ],
)
async def test_invalid_api_models_are_400s_that_name_the_field(
    bodhi: InProcessApp, power_user: Account, change: dict[str, Any], param: str
) -> None:
    error = assert_error(await power_user.client.post(API, json=api_model(**change)), 400, "invalid_request_error")

    assert error["param"] == param
    assert f"`{param}`" in error["message"]
    assert await bodhi.db.fetchval("SELECT count(*) FROM api_models") == 0


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8000/v1", "http://10.1.2.3/v1", "http://169.254.169.254/latest", "http://[::1]/v1"],
)
async def test_private_and_metadata_addresses_are_refused(power_user: Account, base_url: str) -> None:
    response = await power_user.client.post(API, json=api_model(base_url=base_url))

    error = assert_error(response, 400, "invalid_request_error", "upstream_address_refused")
    assert error["param"] == "base_url"


async def test_private_addresses_are_fine_where_allowed(app_factory: AppFactory) -> None:
    async with app_factory(allow_private_upstreams=True) as app:
        account = await app.account(Role.POWER_USER)
        lan = await account.client.post(API, json=api_model(base_url="http://10.1.2.3/v1"))
        metadata = await account.client.post(API, json=api_model(base_url="http://169.254.169.254/v1", models=["y"]))
    assert lan.status_code == 201, lan.text
    assert_error(metadata, 400, "invalid_request_error", "upstream_address_refused")  # never, allowed or not


async def test_ambiguous_ids_are_refused_with_409(power_user: Account) -> None:
    assert (
        await power_user.client.post(API, json=api_model(name="First", prefix="p/", models=["m"]))
    ).status_code == 201

    same_id = await power_user.client.post(API, json=api_model(name="Second", models=["p/m"]))
    same_prefix = await power_user.client.post(API, json=api_model(name="Third", prefix="p/", models=["other"]))
    without_prefix = await power_user.client.post(API, json=api_model(name="Fourth", models=["m"]))

    error = assert_error(same_id, 409, "invalid_request_error", "conflict")
    assert "`p/m`" in error["message"]
    assert "`First`" in error["message"]
    assert_error(same_prefix, 409, "invalid_request_error")
    assert without_prefix.status_code == 201  # `m` alone is a different id from `p/m`


async def test_checks_and_chats_without_a_remote_worker_are_503_at_once(power_user: Account) -> None:
    """No worker runs in-process: what needs one says so at once, in the error shape."""
    created = await power_user.client.post(API, json=api_model())
    api_model_id = created.json()["id"]

    for response in (
        await power_user.client.post(f"{API}/fetch-models", json={"base_url": BASE_URL, "api_key": KEY}),
        await power_user.client.post(f"{API}/test", json={"id": api_model_id, "model": "gpt-x"}),
        await power_user.client.post(
            "/v1/chat/completions", json={"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
        ),
        await power_user.client.post("/v1/embeddings", json={"model": "gpt-x", "input": "hi"}),
    ):
        error = assert_error(response, 503, "api_error", "no_worker_available")
        assert "bodhi remote-worker" in error["message"]
    unknown = await power_user.client.post(
        "/v1/chat/completions", json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert_error(unknown, 404, "invalid_request_error", "model_not_found")
    no_model = await power_user.client.post(f"{API}/test", json={"base_url": BASE_URL, "api_key": KEY})
    assert assert_error(no_model, 400, "invalid_request_error")["param"] == "model"
    neither = await power_user.client.post(f"{API}/fetch-models", json={})
    assert_error(neither, 400, "invalid_request_error")


async def test_saving_an_api_model_with_the_key_file_reads_no_file_on_the_loop(
    app_factory: AppFactory, worker_keys_dir: Path, blocking_refused: BlockBuster
) -> None:
    # At start-up (the lifespan, before anything is served) reading the key file is fine.
    allow_known_blocking(blocking_refused, [("bodhi_api/resources.py", "open_resources")])
    async with app_factory(worker_public_key=None, home=worker_keys_dir.parent) as app:
        account = await app.account(Role.POWER_USER)
        created = await account.client.post(API, json=api_model())
    assert created.status_code == 201, created.text
