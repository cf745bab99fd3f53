"""Keys bound to where they go, ownership, and the API-model form's semantics (issue "Close the leaks").

An "attacker" is a second fake provider on loopback: whatever reaches it, a key included, is recorded.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from bodhi_shared.crypto import LEGACY_VERSION, REBOUND_VERSION, PublicKey, seal
from bodhi_shared.worker_keys import KEYS_DIR
from tests.conftest import Gateway, StartGateway
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.processes import create_user_and_token

API = "/bodhi/v1/models/api"
KEY = "sk-owner-" + "o" * 24
MANAGER_PASSWORD = "manager-pa55word-planted"
NEW_KEY = "sk-new-" + "n" * 24
WRONG_KEY = "sk-wrong-" + "w" * 24


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def received_anything(server: FakeUpstream) -> bool:
    return bool(server.requests or server.model_list_requests)


async def user_client(gateway: Gateway, *, role: str, scope: str = "power_user") -> httpx.AsyncClient:
    token = await asyncio.to_thread(
        create_user_and_token, gateway.env, username=unique(role), password="a-long-password", role=role, scope=scope
    )
    return httpx.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=20)


async def create_model(client: httpx.AsyncClient, provider: FakeUpstream, **extra: object) -> dict[str, object]:
    model = unique("m")
    provider.scripts[model] = Script(text="ok")
    body = {"name": unique("api"), "base_url": provider.base_url, "api_key": KEY, "models": [model]} | extra
    created = await client.post(API, json=body)
    assert created.status_code == 201, created.text
    saved: dict[str, object] = created.json()
    return saved


async def chat(client: httpx.AsyncClient, model: object) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )


async def test_no_path_sends_a_stored_key_to_another_server(
    gateway: Gateway, client: httpx.AsyncClient, provider: FakeUpstream, attacker: FakeUpstream, db: asyncpg.Connection
) -> None:
    saved = await create_model(client, provider)
    model = saved["models"][0]  # type: ignore[index]
    redirect = {"id": saved["id"], "base_url": attacker.base_url}

    # Another power_user: refused outright (not the owner), whatever the URL.
    async with await user_client(gateway, role="power_user") as other:
        for path in ("fetch-models", "test"):
            refused = await other.post(f"{API}/{path}", json=redirect | {"model": model})
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "not_owner"
    # The owner too: the stored key goes to its own URL only; another URL needs a key typed for it.
    for path in ("fetch-models", "test"):
        refused = await client.post(f"{API}/{path}", json=redirect | {"model": model})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "api_key"
    moved = await client.put(f"{API}/{saved['id']}", json={"base_url": attacker.base_url, "models": [model]})
    assert moved.status_code == 400, moved.text
    assert moved.json()["error"]["param"] == "api_key"
    assert "sealed for the old URL" in moved.json()["error"]["message"]
    patched = await client.patch(f"{API}/{saved['id']}", json={"base_url": attacker.base_url})
    assert patched.status_code == 400
    assert (await chat(client, model)).status_code == 200

    # Even a bug that pointed the row elsewhere could not send the key: it is sealed for the URL it was saved with.
    await db.execute(
        "UPDATE api_models SET base_url = $2 WHERE id = $1", uuid.UUID(str(saved["id"])), attacker.base_url
    )
    # (any save makes every replica drop its cached routes, so the chat below reads the altered row)
    await client.post(API, json={"base_url": "http://127.0.0.1:9/v1", "api_key": "k", "models": [unique("x")]})
    failed = await chat(client, model)
    assert failed.status_code >= 400
    assert not received_anything(attacker)
    assert KEY not in failed.text
    assert KEY not in gateway.logs()
    assert (await client.delete(f"{API}/{saved['id']}")).status_code == 204  # a row no key opens: gone again


async def test_a_new_url_with_its_new_key_is_saved_and_used(
    client: httpx.AsyncClient, provider: FakeUpstream, attacker: FakeUpstream
) -> None:
    saved = await create_model(client, provider)
    model = saved["models"][0]  # type: ignore[index]
    attacker.scripts[str(model)] = Script(text="moved")
    moved = await client.patch(f"{API}/{saved['id']}", json={"base_url": attacker.base_url, "api_key": NEW_KEY})
    assert moved.status_code == 200, moved.text

    assert (await chat(client, model)).json()["choices"][0]["message"]["content"].startswith("moved")
    assert attacker.requests[-1].headers["authorization"] == f"Bearer {NEW_KEY}"


async def test_power_users_manage_only_their_own_api_models(
    gateway: Gateway, client: httpx.AsyncClient, provider: FakeUpstream
) -> None:
    saved = await create_model(client, provider)
    model, url = saved["models"][0], f"{API}/{saved['id']}"  # type: ignore[index]
    full = {"base_url": provider.base_url, "models": [model], "name": "renamed"}

    async with await user_client(gateway, role="power_user") as other:
        listed = {m["id"]: m for m in (await other.get(API)).json()["data"]}
        assert listed[saved["id"]]["editable"] is False
        assert (await other.put(url, json=full)).status_code == 403
        assert (await other.patch(url, json={"name": "mine now"})).status_code == 403
        assert (await other.delete(url)).status_code == 403
        assert (await chat(other, model)).status_code == 200  # the team shares them for inference
        own = await create_model(other, provider)
        assert (await other.patch(f"{API}/{own['id']}", json={"name": "still mine"})).status_code == 200

    manager_name = unique("manager")
    await asyncio.to_thread(
        create_user_and_token, gateway.env, username=manager_name, password=MANAGER_PASSWORD, role="manager"
    )
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as manager:
        login = await manager.post(
            "/bodhi/v1/auth/login", json={"username": manager_name, "password": MANAGER_PASSWORD}
        )
        assert login.status_code == 200, login.text
        renamed = await manager.patch(url, json={"name": "renamed by a manager"})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["editable"] is True
        assert (await manager.delete(url)).status_code == 204


async def test_a_typed_key_with_an_id_is_the_key_tested(client: httpx.AsyncClient, provider: FakeUpstream) -> None:
    saved = await create_model(client, provider)
    model = saved["models"][0]  # type: ignore[index]
    provider.models_required_key = KEY

    fetched = await client.post(f"{API}/fetch-models", json={"id": saved["id"], "api_key": WRONG_KEY})
    assert fetched.json()["error"]["code"] == "invalid_api_key", fetched.text
    assert WRONG_KEY not in fetched.text
    tested = await client.post(f"{API}/test", json={"id": saved["id"], "api_key": WRONG_KEY, "model": model})
    assert provider.requests[-1].headers["authorization"] == f"Bearer {WRONG_KEY}"
    assert tested.status_code == 200
    stored = await client.post(f"{API}/fetch-models", json={"id": saved["id"]})
    assert stored.status_code == 200, stored.text
    assert provider.model_list_requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_an_empty_api_key_on_edit_keeps_the_stored_key(client: httpx.AsyncClient, provider: FakeUpstream) -> None:
    saved = await create_model(client, provider, prefix=unique("keep") + "/")
    model = saved["models"][0]  # type: ignore[index]
    served = f"{saved['prefix']}{model}"
    edited = await client.put(
        f"{API}/{saved['id']}",
        json={
            "name": "edited",
            "base_url": provider.base_url,
            "prefix": saved["prefix"],
            "models": [model],
            "api_key": "",
        },
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["api_key_hint"] == saved["api_key_hint"]

    assert (await chat(client, served)).status_code == 200
    assert provider.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_patch_changes_only_what_it_names_and_put_replaces(
    client: httpx.AsyncClient, provider: FakeUpstream
) -> None:
    saved = await create_model(client, provider, prefix=unique("p") + "/")
    url, extra = f"{API}/{saved['id']}", unique("extra")

    patched = (await client.patch(url, json={"models": [*saved["models"], extra]})).json()  # type: ignore[misc]
    assert patched["models"] == [*saved["models"], extra]  # type: ignore[misc]
    assert {k: patched[k] for k in ("name", "base_url", "prefix")} == {
        k: saved[k] for k in ("name", "base_url", "prefix")
    }
    assert (await client.patch(url, json={"models": []})).status_code == 400

    replaced = (await client.put(url, json={"base_url": provider.base_url, "models": [extra]})).json()
    assert replaced["prefix"] is None  # a full replace: what is not sent is gone
    assert replaced["name"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("http://127.0.0.1:9/v1/chat/completions", "use http://127.0.0.1:9/v1"),
        ("http://127.0.0.1:9/v1/models", "use http://127.0.0.1:9/v1"),
        ("http://127.0.0.1:9/v1/embeddings/", "use http://127.0.0.1:9/v1"),
        ("http://127.0.0.1:9/v1?api-version=1", "query string"),
        ("http://127.0.0.1:9/v1#top", "query string or fragment"),
        ("http://user:hunter2-secret@127.0.0.1:9/v1", "user name or password"),
        ("http://169.254.169.254/v1", "link-local"),
        ("http://[::ffff:169.254.169.254]/v1", "link-local"),
        ("http://2852039166/v1", "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1", "metadata"),
        ("http://[fd00:ec2::254]/v1", "metadata"),
    ],
)
async def test_refused_base_urls_get_400_everywhere(client: httpx.AsyncClient, base_url: str, says: str) -> None:
    form = {"base_url": base_url, "api_key": "sk-x", "models": [unique("m")]}
    for response in (
        await client.post(API, json=form),
        await client.post(f"{API}/fetch-models", json=form),
        await client.post(f"{API}/test", json=form | {"model": "m"}),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "base_url"
        assert says in response.json()["error"]["message"]
        assert "hunter2-secret" not in response.text


async def test_private_upstreams_are_refused_unless_allowed(start_gateway: StartGateway) -> None:
    refusing = start_gateway(worker=False, BODHI_ALLOW_PRIVATE_UPSTREAMS="false")
    async with httpx.AsyncClient(base_url=refusing.base_url, headers=refusing.auth_headers, timeout=20) as http:
        for base_url in (
            "http://127.0.0.1:6379/v1",
            "http://10.0.0.1/v1",
            "http://[::1]:8000/v1",
            "http://0x7f000001/v1",
        ):
            refused = await http.post(API, json={"base_url": base_url, "api_key": "sk-x", "models": [unique("m")]})
            assert refused.status_code == 400, refused.text
            assert "BODHI_ALLOW_PRIVATE_UPSTREAMS" in refused.json()["error"]["message"]


async def test_a_key_sealed_before_url_binding_still_serves_after_the_upgrade(
    gateway: Gateway,
    client: httpx.AsyncClient,
    provider: FakeUpstream,
    db: asyncpg.Connection,
    start_gateway: StartGateway,
) -> None:
    row_id, model = uuid.uuid4(), unique("legacy")
    provider.scripts[model] = Script(text="legacy")
    public_key = PublicKey.load((gateway_home(gateway) / KEYS_DIR / "worker_public_key.pem").read_text())
    legacy = seal(KEY, public_key=public_key, binding=str(row_id), version=LEGACY_VERSION)  # as version 1 did
    await db.execute(
        "INSERT INTO api_models (id, name, api_format, base_url, models, sealed_key, key_hint)"
        " VALUES ($1, 'legacy', 'openai', $2, $3, $4, 'sk-...oooo')",
        row_id,
        provider.base_url,
        [model],
        legacy.to_bytes(),
    )
    await db.execute(
        "INSERT INTO served_models (model_id, api_model_id, upstream_model) VALUES ($1, $2, $1)", model, row_id
    )

    upgraded = start_gateway()  # an API replica starting re-binds the row
    assert await db.fetchval("SELECT get_byte(sealed_key, 0) FROM api_models WHERE id = $1", row_id) == REBOUND_VERSION
    async with httpx.AsyncClient(base_url=upgraded.base_url, headers=upgraded.auth_headers, timeout=20) as http:
        answered = await chat(http, model)
    assert answered.status_code == 200, answered.text
    assert provider.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def gateway_home(gateway: Gateway) -> Path:
    return Path(gateway.env["BODHI_HOME"])


async def test_lists_sort_without_regard_to_case_and_did_you_mean_keeps_to_the_prefix(
    client: httpx.AsyncClient, provider: FakeUpstream
) -> None:
    tag = uuid.uuid4().hex[:6]
    mine, theirs = f"mine{tag}/", f"theirs{tag}/"
    await create_model(client, provider, prefix=mine, models=[f"Zeta-model-{tag}", f"alpha-model-{tag}", "gpt-4o"])
    await create_model(client, provider, prefix=theirs, models=["gpt-4o-mini"])

    ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"] if m["id"].startswith(mine)]
    assert ids == [f"{mine}alpha-model-{tag}", f"{mine}gpt-4o", f"{mine}Zeta-model-{tag}"]
    missing = await chat(client, f"{mine}gpt-4o-mini")
    assert missing.status_code == 404
    assert f"Did you mean `{mine}gpt-4o`?" in missing.json()["error"]["message"]


def test_openapi_describes_the_api_model_and_alias_bodies(gateway: Gateway) -> None:
    document = httpx.get(f"{gateway.base_url}/openapi.json", timeout=10).json()
    routes = {
        p: ops
        for p, ops in document["paths"].items()
        if p.startswith(("/bodhi/v1/models/api", "/bodhi/v1/models/alias"))
    }
    assert any(p.startswith("/bodhi/v1/models/alias") for p in routes)
    for path, operations in routes.items():
        for method, operation in operations.items():
            if method in ("post", "put", "patch"):
                assert "$ref" in str(operation.get("requestBody")), (method, path)
            if method != "delete":
                ok = operation["responses"].get("200") or operation["responses"].get("201")
                assert ok, (method, path)
                assert "$ref" in str(ok["content"]["application/json"]["schema"]), (method, path)


async def test_the_readme_curl_sends_json_and_a_form_body_says_what_to_send(gateway: Gateway) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    curl = readme[readme.index("curl -s http://127.0.0.1:1135/bodhi/v1/models/api") :].split("\n\n", 1)[0]
    assert '-H "Content-Type: application/json"' in curl

    async with httpx.AsyncClient(base_url=gateway.base_url, headers=gateway.auth_headers, timeout=20) as http:
        as_curl_sends_it = await http.post(
            API,
            content=b'{"name": "x", "base_url": "http://127.0.0.1:9/v1", "api_key": "k", "models": ["m"]}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert as_curl_sends_it.status_code == 400
    assert "Content-Type: application/json" in as_curl_sends_it.json()["error"]["message"]
