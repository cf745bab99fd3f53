"""The seed's eight steps through the HTTP API, against a fake provider that is a real server on loopback."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from tests.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream, Script, free_port
from tests.support.processes import create_user_and_token

KEY_ONE = "sk-walkthrough-" + "1" * 24
KEY_TWO = "sk-walkthrough-" + "2" * 24
API = "/bodhi/v1/models/api"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def chat(client: httpx.AsyncClient, model: str) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )


async def test_seed_walkthrough(client: httpx.AsyncClient, provider: FakeUpstream, db: asyncpg.Connection) -> None:
    gpt4, mini, extra = unique("gpt-4"), unique("gpt-4o-mini"), unique("o3")
    provider.scripts = {gpt4: Script(text="four"), mini: Script(text="mini"), extra: Script(text="extra")}
    provider.models_required_key = KEY_ONE
    prefix = unique("openai") + "/"

    # Steps 1-2: the formats offered, and the base URL (a trailing slash is trimmed on save).
    assert (await client.get(f"{API}/formats")).json() == {"data": ["openai", "openai-responses", "anthropic"]}

    # Step 5: fetch models with the form's key; a wrong key gives the seed's message and never echoes the key.
    fetched = await client.post(f"{API}/fetch-models", json={"base_url": provider.base_url, "api_key": KEY_ONE})
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == {"models": sorted([gpt4, mini, extra])}
    refused = await client.post(f"{API}/fetch-models", json={"base_url": provider.base_url, "api_key": KEY_TWO})
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert refused.json()["error"]["message"].startswith("Invalid API key")
    assert KEY_TWO not in refused.text

    # Step 7: test connection with the form's key.
    tested = await client.post(f"{API}/test", json={"base_url": provider.base_url, "api_key": KEY_ONE, "model": gpt4})
    assert tested.json()["success"] is True
    assert tested.json()["response"] == "four0 four1 four2 "
    assert provider.requests[-1].body["max_tokens"] <= 16

    # Steps 3, 4, 6, 8: save with a prefix, and a second one without.
    with_prefix = await client.post(
        API,
        json={
            "name": "OpenAI explicit",
            "api_format": "openai",
            "base_url": provider.base_url + "/",
            "api_key": KEY_ONE,
            "prefix": prefix,
            "models": [gpt4],
        },
    )
    assert with_prefix.status_code == 201, with_prefix.text
    saved = with_prefix.json()
    assert saved["base_url"] == provider.base_url
    assert saved["has_api_key"] is True
    assert saved["api_key_hint"] == "sk-...1111"
    assert KEY_ONE not in with_prefix.text
    plain = await client.post(
        API, json={"name": "OpenAI direct", "base_url": provider.base_url, "api_key": KEY_ONE, "models": [mini]}
    )
    assert plain.status_code == 201, plain.text

    # Chat through the prefixed id (prefix stripped upstream, stored key sent) and the unprefixed one.
    assert (await chat(client, f"{prefix}{gpt4}")).json()["choices"][0]["message"]["content"] == "four0 four1 four2 "
    assert provider.requests[-1].body["model"] == gpt4
    assert provider.requests[-1].headers["authorization"] == f"Bearer {KEY_ONE}"
    assert (await chat(client, mini)).status_code == 200
    assert (await chat(client, gpt4)).status_code == 404  # only the prefixed id routes

    # The unified list and the OpenAI list: API models grouped by API model, same ids in the same order.
    unified = [
        m
        for m in (await client.get("/bodhi/v1/models")).json()["data"]
        if m["api_model_id"] in (saved["id"], plain.json()["id"])
    ]
    assert [m["id"] for m in unified] == [mini, f"{prefix}{gpt4}"]  # "OpenAI direct" sorts before "OpenAI explicit"
    assert unified[0] | {"api_model_id": None} == {
        "id": mini,
        "source": "api",
        "api_model_id": None,
        "api_model_name": "OpenAI direct",
        "api_format": "openai",
        "base_url": provider.base_url,
    }
    all_ids = [m["id"] for m in (await client.get("/bodhi/v1/models")).json()["data"]]
    assert [m["id"] for m in (await client.get("/v1/models")).json()["data"]] == all_ids

    # Test connection of a saved API model uses the stored key.
    stored = await client.post(f"{API}/test", json={"id": saved["id"], "model": gpt4})
    assert stored.json()["success"] is True
    assert provider.requests[-1].headers["authorization"] == f"Bearer {KEY_ONE}"

    # Edit keeping the key: add a model; the stored key still goes upstream.
    kept = await client.put(
        f"{API}/{saved['id']}",
        json={"name": "OpenAI explicit", "base_url": provider.base_url, "prefix": prefix, "models": [gpt4, extra]},
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["api_key_hint"] == "sk-...1111"
    assert (await chat(client, f"{prefix}{extra}")).status_code == 200
    assert provider.requests[-1].headers["authorization"] == f"Bearer {KEY_ONE}"

    # Edit replacing the key: the very next request carries the new one.
    replaced = await client.put(
        f"{API}/{saved['id']}",
        json={
            "name": "OpenAI explicit",
            "base_url": provider.base_url,
            "prefix": prefix,
            "models": [gpt4, extra],
            "api_key": KEY_TWO,
        },
    )
    assert replaced.json()["api_key_hint"] == "sk-...2222"
    assert (await chat(client, f"{prefix}{gpt4}")).status_code == 200
    assert provider.requests[-1].headers["authorization"] == f"Bearer {KEY_TWO}"

    # Delete: the row and its ciphertext are gone, its ids vanish from every list and stop routing.
    assert (await client.delete(f"{API}/{saved['id']}")).status_code == 204
    assert await db.fetchval("SELECT count(*) FROM api_models WHERE id = $1", uuid.UUID(saved["id"])) == 0
    assert (await chat(client, f"{prefix}{gpt4}")).json()["error"]["code"] == "model_not_found"
    assert f"{prefix}{gpt4}" not in [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
    assert (await client.get(f"{API}/{saved['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("script", "code", "phrase"),
    [
        (Script(status=401), "invalid_api_key", "Invalid API key"),
        (None, "network_error", "Network error"),  # no script: the provider's port is closed
        (Script(status=500), "connection_failed", "Connection failed"),
        (Script(status=404), "model_not_found", "Model not found"),
        (Script(status=429), "rate_limit_exceeded", "Rate limit exceeded"),
    ],
)
async def test_connection_failures_have_stable_codes(
    client: httpx.AsyncClient, provider: FakeUpstream, script: Script | None, code: str, phrase: str
) -> None:
    model = unique("failing")
    if script is not None:
        provider.scripts[model] = script
    base_url = provider.base_url if script is not None else f"http://127.0.0.1:{free_port()}/v1"
    tested = await client.post(f"{API}/test", json={"base_url": base_url, "api_key": KEY_ONE, "model": model})

    assert tested.status_code == 200
    answer = tested.json()
    assert answer["success"] is False
    assert answer["error_code"] == code
    assert answer["error"].startswith(phrase)
    assert KEY_ONE not in tested.text


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
        ({"api_format": "gemini"}, "api_format"),
        ({"extra_headers": {"X-Api-Key": "sk-x"}}, "extra_headers"),
    ],
)
async def test_invalid_api_models_are_refused_with_400(
    client: httpx.AsyncClient, change: dict[str, object], param: str
) -> None:
    body = {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-x", "models": [unique("m")]} | change
    response = await client.post(API, json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert f"`{param}`" in response.json()["error"]["message"]


async def test_ambiguous_ids_are_refused_with_409(client: httpx.AsyncClient) -> None:
    model, prefix = unique("shared-model"), unique("p") + "/"
    first = await client.post(
        API,
        json={
            "name": "First",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": "sk-1",
            "prefix": prefix,
            "models": [model],
        },
    )
    assert first.status_code == 201

    same_id = await client.post(
        API,
        json={"name": "Second", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-2", "models": [f"{prefix}{model}"]},
    )
    same_prefix = await client.post(
        API,
        json={
            "name": "Third",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": "sk-3",
            "prefix": prefix,
            "models": [unique("other")],
        },
    )
    without_prefix = await client.post(
        API, json={"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-4", "models": [model]}
    )

    assert same_id.status_code == 409
    assert f"`{prefix}{model}`" in same_id.json()["error"]["message"]
    assert "`First`" in same_id.json()["error"]["message"]
    assert same_prefix.status_code == 409
    assert without_prefix.status_code == 201  # `model` alone is a different id from `prefix/model`


async def test_readers_may_list_but_not_write(gateway: Gateway, client: httpx.AsyncClient) -> None:

    token = await asyncio.to_thread(
        create_user_and_token,
        gateway.env,
        username=unique("reader"),
        password="reader-password",
        role="user",
        scope="user",
    )
    async with httpx.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {token}"}) as reader:
        assert (await reader.get(API)).status_code == 200
        created = await reader.post(API, json={"base_url": "http://127.0.0.1:9/v1", "api_key": "k", "models": ["x"]})
        assert created.status_code == 403
