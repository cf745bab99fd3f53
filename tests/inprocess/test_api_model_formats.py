"""API models of every provider format, with extra headers, and keyless ones: what the API stores, shows, refuses
and routes (in-process; the worker side is tests/bodhi_remote_worker/test_provider_formats.py, the whole way
through tests/bodhi_api/test_provider_formats_e2e.py)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from bodhi_api.model_routing import resolve_model
from bodhi_shared.crypto import SealedSecret, keyring, load_or_create_key_pair, open_bound
from tests.inprocess.harness import Account, InProcessApp, assert_error

API = "/bodhi/v1/models/api"
ANTHROPIC_URL = "https://api.anthropic.com/v1"
KEY = "sk-ant-inprocess-" + "4" * 24


def api_model(**change: Any) -> dict[str, Any]:
    return {
        "name": "Claude",
        "api_format": "anthropic",
        "base_url": ANTHROPIC_URL,
        "api_key": KEY,
        "models": ["claude-x"],
        "extra_headers": {"anthropic-beta": "tools-2024-04-04", "X-Team": "blue"},
    } | change


async def opened_key(bodhi: InProcessApp, worker_keys_dir: Path, api_model_id: str, base_url: str) -> str:
    row = await bodhi.db.fetchrow("SELECT sealed_key FROM api_models WHERE id = $1", uuid.UUID(api_model_id))
    assert row is not None
    private_key, _ = await asyncio.to_thread(load_or_create_key_pair, worker_keys_dir)
    sealed = SealedSecret.from_bytes(bytes(row["sealed_key"]))
    return open_bound(sealed, private_keys=keyring(private_key), row=api_model_id, base_url=base_url)


async def test_format_and_extra_headers_are_stored_shown_and_routed(
    bodhi: InProcessApp, power_user: Account, user: Account
) -> None:
    created = await power_user.client.post(API, json=api_model())
    assert created.status_code == 201, created.text
    saved = created.json()
    assert (saved["api_format"], saved["extra_headers"]) == (
        "anthropic",
        {"anthropic-beta": "tools-2024-04-04", "X-Team": "blue"},
    )
    # Not secrets: every user reads them.
    shown = (await user.client.get(f"{API}/{saved['id']}")).json()
    assert shown["extra_headers"] == saved["extra_headers"]

    route = await resolve_model(bodhi.db, "claude-x")
    assert route.upstream is not None
    assert (route.upstream.api_format, route.upstream.extra_headers) == ("anthropic", saved["extra_headers"])

    patched = await power_user.client.patch(f"{API}/{saved['id']}", json={"extra_headers": {"X-Team": "red"}})
    assert patched.json()["extra_headers"] == {"X-Team": "red"}
    untouched = await power_user.client.patch(f"{API}/{saved['id']}", json={"name": "Claude 2"})
    assert untouched.json()["extra_headers"] == {"X-Team": "red"}  # PATCH keeps what it does not name
    put = await power_user.client.put(
        f"{API}/{saved['id']}",
        json={"api_format": "openai-responses", "base_url": ANTHROPIC_URL, "models": ["claude-x"]},
    )
    assert (put.json()["api_format"], put.json()["extra_headers"]) == ("openai-responses", {})  # PUT replaces


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"Authorization": "Bearer sk-x"}, "goes in `api_key`"),
        ({"x-api-key": "sk-x"}, "goes in `api_key`"),
        ({"Proxy-Authorization": "Basic x"}, "goes in `api_key`"),
        ({"Cookie": "a=b"}, "goes in `api_key`"),
        ({"HOST": "evil.example"}, "Bodhi sets it itself"),
        ({"Content-Length": "5"}, "Bodhi sets it itself"),
        ({"Transfer-Encoding": "chunked"}, "Bodhi sets it itself"),
        ({"Content-Type": "text/plain"}, "Bodhi sets it itself"),
        ({"anthropic-version": "2099-01-01"}, "Bodhi sets it itself"),
        ({"Bad Header": "x"}, "is not a header name"),
        ({"X-Ok:": "x"}, "is not a header name"),
        ({"": "x"}, "is not a header name"),
        ({"X-Split": "a\r\nX-Evil: b"}, "printable ASCII"),
        ({"X-Accent": "café"}, "printable ASCII"),
        ({"X-Number": 5}, "must be a string"),
        ({"X-Team": "a", "x-team": "b"}, "more than once"),
        ({f"X-H{i}": "v" for i in range(21)}, "at most 20"),
        ("X-Team: blue", "dictionary"),
    ],
)
async def test_refused_extra_headers_are_400s_naming_extra_headers(
    bodhi: InProcessApp, power_user: Account, headers: Any, says: str
) -> None:
    for sent in (
        await power_user.client.post(API, json=api_model(extra_headers=headers)),
        await power_user.client.post(f"{API}/fetch-models", json={"base_url": ANTHROPIC_URL, "extra_headers": headers}),
    ):
        error = assert_error(sent, 400, "invalid_request_error")
        assert error["param"] == "extra_headers"
        assert "`extra_headers`" in error["message"]
        assert says in error["message"]
        assert "sk-x" not in error["message"]
    assert await bodhi.db.fetchval("SELECT count(*) FROM api_models") == 0


async def test_twenty_headers_are_fine(power_user: Account) -> None:
    headers = {f"X-H{i}": "v" for i in range(20)}
    created = await power_user.client.post(API, json=api_model(extra_headers=headers))
    assert created.status_code == 201, created.text


async def test_a_keyless_api_model_has_no_key_and_keeps_none(
    bodhi: InProcessApp, power_user: Account, worker_keys_dir: Path
) -> None:
    body = api_model(api_format="openai", base_url="https://llm.example.com/v1", models=["local-llm"])
    del body["api_key"]
    created = await power_user.client.post(API, json=body)
    assert created.status_code == 201, created.text
    saved = created.json()
    assert (saved["has_api_key"], saved["api_key_hint"]) == (False, "")
    # The empty key is sealed for the row and its URL, like any key: the worker opens it to "" (no key header).
    assert await opened_key(bodhi, worker_keys_dir, saved["id"], "https://llm.example.com/v1") == ""
    empty = await power_user.client.post(API, json=body | {"api_key": "", "models": ["other-llm"], "name": "Two"})
    assert empty.json()["has_api_key"] is False

    # A new base URL needs no key to be entered again: there is none.
    moved = await power_user.client.patch(f"{API}/{saved['id']}", json={"base_url": "https://llm2.example.com/v1"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["has_api_key"] is False
    assert await opened_key(bodhi, worker_keys_dir, saved["id"], "https://llm2.example.com/v1") == ""

    # A key added later is sealed as usual; from then on a new URL needs it again.
    keyed = await power_user.client.patch(f"{API}/{saved['id']}", json={"api_key": KEY})
    assert (keyed.json()["has_api_key"], keyed.json()["api_key_hint"]) == (True, "sk-...4444")
    refused = await power_user.client.patch(f"{API}/{saved['id']}", json={"base_url": "https://llm3.example.com/v1"})
    assert assert_error(refused, 400, "invalid_request_error")["param"] == "api_key"


async def test_checks_of_keyless_providers_need_no_key(power_user: Account) -> None:
    """Without a worker in-process, a check that would go out answers 503: it was not refused for lack of a key."""
    keyless = {"base_url": "https://llm.example.com/v1", "api_format": "openai-responses"}
    for response in (
        await power_user.client.post(f"{API}/fetch-models", json=keyless),
        await power_user.client.post(f"{API}/test", json=keyless | {"model": "m"}),
    ):
        assert_error(response, 503, "api_error", "no_worker_available")
    body = api_model(base_url="https://llm.example.com/v1")
    del body["api_key"]
    saved = (await power_user.client.post(API, json=body)).json()
    moved = {"id": saved["id"], "base_url": "https://llm2.example.com/v1", "model": "claude-x"}
    assert_error(await power_user.client.post(f"{API}/test", json=moved), 503, "api_error", "no_worker_available")
    neither = await power_user.client.post(f"{API}/fetch-models", json={"api_format": "anthropic"})
    assert assert_error(neither, 400, "invalid_request_error")["param"] == "base_url"


async def test_the_formats_list_every_format(user: Account) -> None:
    assert (await user.client.get(f"{API}/formats")).json() == {"data": ["openai", "openai-responses", "anthropic"]}
