"""Local models in-process: the GGUF file listing, local aliases from the models folder and the HuggingFace
cache, and the model lists. Every one of these routes looks at the disk: none may do it on the event loop."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from bodhi_api.auth.roles import Role
from tests.inprocess.conftest import AppFactory
from tests.inprocess.harness import GGUF_HEADER, Account, HfCache, InProcessApp, assert_error

ALIASES = "/bodhi/v1/models/alias"
FILES = "/bodhi/v1/models/files"


def write(path: Path, data: bytes = GGUF_HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def set_mtime(path: Path, seconds: float) -> None:
    os.utime(path, (seconds, seconds))


async def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Files are written off the event loop, as the app must read them."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_the_file_listing_shows_the_models_folder_then_the_hf_cache(
    bodhi: InProcessApp, power_user: Account, hf_cache: HfCache
) -> None:
    models = bodhi.models_dir
    await in_thread(write, models / "b.gguf", GGUF_HEADER + b"x" * 10)
    await in_thread(write, models / "nested" / "a.Q4_0.gguf")
    await in_thread(write, models / "notes.txt", b"not listed")
    await in_thread(os.symlink, models / "missing.gguf", models / "dangling.gguf")  # a link to nothing: skipped
    old = await in_thread(hf_cache.add, "acme/tiny", "tiny.Q8_0.gguf", snapshot="old")
    new = await in_thread(hf_cache.add, "acme/tiny", "tiny.Q8_0.gguf", snapshot="new", data=GGUF_HEADER + b"new")
    await in_thread(set_mtime, old.parent, 1_000)
    await in_thread(set_mtime, new.parent, 2_000)
    await in_thread(hf_cache.add, "zed/other", "sub/other.F16.gguf")

    response = await power_user.client.get(FILES)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["models_dir"] == str(models)
    listed = [(f["source"], f["repo"], f["filename"], f["size_bytes"]) for f in body["data"]]
    assert listed == [
        ("models_dir", None, "b.gguf", len(GGUF_HEADER) + 10),
        ("models_dir", None, "nested/a.Q4_0.gguf", len(GGUF_HEADER)),
        ("hf_cache", "acme/tiny", "tiny.Q8_0.gguf", len(GGUF_HEADER) + 3),  # the newest snapshot's
        ("hf_cache", "zed/other", "sub/other.F16.gguf", len(GGUF_HEADER)),
    ]
    assert body["data"][2]["path"] == str(new)
    assert body["data"][0]["path"] == str(models / "b.gguf")


async def test_the_file_listing_is_for_power_users(bodhi: InProcessApp, user: Account) -> None:
    assert_error(await user.client.get(FILES), 403, "permission_error", "insufficient_role")
    assert_error(await bodhi.client().get(FILES), 401, "authentication_error", "invalid_api_key")


async def test_an_empty_or_missing_models_folder_lists_nothing(app_factory: AppFactory, tmp_path: Path) -> None:
    async with app_factory(home=tmp_path / "no-such-home") as app:
        account = await app.account(Role.POWER_USER)
        response = await account.client.get(FILES)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


async def test_hf_cache_files_present_at_start_become_automatic_aliases(
    app_factory: AppFactory, hf_cache: HfCache
) -> None:
    path = await in_thread(hf_cache.add, "acme/tiny", "tiny.Q4_K_M.gguf")
    await in_thread(hf_cache.add, "acme/tiny", "tiny.gguf")  # no quantisation in the name: no automatic alias
    async with app_factory() as app:
        account = await app.account(Role.USER)
        listed = (await account.client.get(ALIASES)).json()["data"]
        served = (await account.client.get("/v1/models")).json()["data"]
        catalogue = await app.resources.redis.hgetall(app.resources.keys.local_aliases)  # type: ignore[misc]

    assert [(a["alias"], a["source"], a["repo"], a["filename"]) for a in listed] == [
        ("acme/tiny:Q4_K_M", "auto", "acme/tiny", "tiny.Q4_K_M.gguf")
    ]
    assert listed[0]["path"] == str(path)
    assert [m["id"] for m in served] == ["acme/tiny:Q4_K_M"]
    assert json.loads(catalogue[b"acme/tiny:Q4_K_M"]) == {
        "alias": "acme/tiny:Q4_K_M",
        "path": str(path),
        "context_params": {},
    }


async def test_hf_cache_files_downloaded_later_show_up_on_the_next_listing(
    bodhi: InProcessApp, user: Account, hf_cache: HfCache
) -> None:
    assert (await user.client.get(ALIASES)).json()["data"] == []
    await in_thread(hf_cache.add, "acme/late", "late.Q5_K_S.gguf")

    listed = (await user.client.get(ALIASES)).json()["data"]

    assert [a["alias"] for a in listed] == ["acme/late:Q5_K_S"]
    catalogue = await bodhi.resources.redis.hkeys(bodhi.resources.keys.local_aliases)  # type: ignore[misc]
    assert catalogue == [b"acme/late:Q5_K_S"]
    unified = (await user.client.get("/bodhi/v1/models")).json()["data"]
    assert [(m["id"], m["source"]) for m in unified] == [("acme/late:Q5_K_S", "local")]


async def test_an_alias_names_a_file_of_a_repo_in_the_hf_cache(power_user: Account, hf_cache: HfCache) -> None:
    old = await in_thread(hf_cache.add, "acme/tiny", "tiny.Q8_0.gguf", snapshot="old")
    new = await in_thread(hf_cache.add, "acme/tiny", "tiny.Q8_0.gguf", snapshot="new")
    await in_thread(set_mtime, old, 1_000)
    await in_thread(set_mtime, new, 2_000)
    await in_thread(hf_cache.add, "acme/tiny", "broken.Q4_0.gguf", data=b"not a model at all")

    created = await power_user.client.post(
        ALIASES, json={"alias": "by-repo", "repo": "acme/tiny", "filename": "tiny.Q8_0.gguf"}
    )
    missing = await power_user.client.post(
        ALIASES, json={"alias": "gone", "repo": "acme/tiny", "filename": "tiny.Q2_K.gguf"}
    )
    not_gguf = await power_user.client.post(
        ALIASES, json={"alias": "broken", "repo": "acme/tiny", "filename": "broken.Q4_0.gguf"}
    )

    assert created.status_code == 201, created.text
    assert created.json()["path"] == str(await in_thread(new.resolve))  # the newest snapshot's file
    assert (created.json()["repo"], created.json()["filename"], created.json()["source"]) == (
        "acme/tiny",
        "tiny.Q8_0.gguf",
        "user",
    )
    error = assert_error(missing, 400, "invalid_request_error")
    assert error["param"] == "filename"
    assert error["message"] == "`tiny.Q2_K.gguf` of `acme/tiny` is not in the HuggingFace cache."
    error = assert_error(not_gguf, 400, "invalid_request_error")
    assert error["param"] == "filename"
    assert "is not a GGUF file" in error["message"]


async def test_an_alias_names_a_file_of_the_models_folder(bodhi: InProcessApp, power_user: Account) -> None:
    file = await in_thread(write, bodhi.models_dir / "team" / "m.gguf")
    expected = str(await in_thread(file.resolve))

    by_filename = await power_user.client.post(ALIASES, json={"alias": "by-filename", "filename": "team/m.gguf"})
    by_relative = await power_user.client.post(ALIASES, json={"alias": "by-relative", "path": "team/m.gguf"})
    by_absolute = await power_user.client.post(ALIASES, json={"alias": "by-absolute", "path": str(file)})
    missing = await power_user.client.post(ALIASES, json={"alias": "missing", "filename": "team/none.gguf"})

    for created in (by_filename, by_relative, by_absolute):
        assert created.status_code == 201, created.text
        assert created.json()["path"] == expected
    error = assert_error(missing, 400, "invalid_request_error")
    assert error["param"] == "filename"
    assert "no file at" in error["message"]


@pytest.mark.parametrize(
    ("change", "param", "says"),
    [
        ({"path": "/nowhere/model.gguf"}, "path", "no file at"),
        ({"path": "__TEXT__"}, "path", "not a GGUF file"),
        ({"path": "__DIRECTORY__"}, "path", "no file at"),
        ({"path": None}, "path", "Give `path`"),
        ({"path": "x" * 300 + ".gguf"}, "path", "too long for a file system"),
        ({"alias": "bad alias"}, "alias", "must be 1 to 128 letters"),
        ({"context_params": {"n_gpu_layerz": 1}}, "context_params", "`n_gpu_layerz` is not supported"),
        ({"context_params": {"n_ctx": True}}, "context_params.n_ctx", "valid integer"),
        ({"request_params": {"top_p": 2}}, "request_params.top_p", "less than or equal to 1"),
    ],
)
async def test_bad_aliases_are_400s_that_name_the_field(
    bodhi: InProcessApp, power_user: Account, change: dict[str, Any], param: str, says: str
) -> None:
    model = await in_thread(write, bodhi.models_dir / "ok.gguf")
    text = await in_thread(write, bodhi.models_dir / "notes.gguf", b"plain text")
    body: dict[str, Any] = {"alias": "bad", "path": str(model)} | change
    body["path"] = {"__TEXT__": str(text), "__DIRECTORY__": str(bodhi.models_dir)}.get(body["path"], body["path"])

    error = assert_error(await power_user.client.post(ALIASES, json=body), 400, "invalid_request_error")

    assert error["param"] == param
    assert says in error["message"]


async def test_create_update_delete_keep_the_catalogue_and_the_model_lists_in_step(
    bodhi: InProcessApp, power_user: Account, user: Account
) -> None:
    first = await in_thread(write, bodhi.models_dir / "first.gguf")
    second = await in_thread(write, bodhi.models_dir / "second.gguf")
    keys = bodhi.resources.keys

    created = await power_user.client.post(
        ALIASES, json={"alias": "tiny", "path": str(first), "context_params": {"n_ctx": 256}}
    )
    assert created.status_code == 201, created.text
    assert_error(await user.client.post(ALIASES, json={"alias": "mine", "path": str(first)}), 403, "permission_error")
    assert (await user.client.get(f"{ALIASES}/tiny")).json() == created.json()
    entry = await bodhi.resources.redis.hget(keys.local_aliases, "tiny")  # type: ignore[misc]
    assert json.loads(entry) == {"alias": "tiny", "path": str(first), "context_params": {"n_ctx": 256}}

    updated = await power_user.client.put(f"{ALIASES}/tiny", json={"path": str(second)})
    assert updated.status_code == 200, updated.text
    assert updated.json()["path"] == str(second)
    assert updated.json()["context_params"] == {}
    entry = await bodhi.resources.redis.hget(keys.local_aliases, "tiny")  # type: ignore[misc]
    assert json.loads(entry)["path"] == str(second)
    renamed = await power_user.client.put(f"{ALIASES}/tiny", json={"alias": "other", "path": str(second)})
    assert assert_error(renamed, 400, "invalid_request_error")["param"] == "alias"
    gone_file = await power_user.client.put(f"{ALIASES}/tiny", json={"path": str(bodhi.models_dir / "none.gguf")})
    assert_error(gone_file, 400, "invalid_request_error")
    assert_error(
        await power_user.client.put(f"{ALIASES}/nobody", json={"path": str(second)}), 404, "invalid_request_error"
    )

    assert [m["id"] for m in (await user.client.get("/v1/models")).json()["data"]] == ["tiny"]
    assert (await user.client.get("/v1/models/tiny")).json() == {
        "id": "tiny",
        "object": "model",
        "created": 0,
        "owned_by": "bodhi",
    }

    assert (await power_user.client.delete(f"{ALIASES}/tiny")).status_code == 204
    assert_error(await power_user.client.delete(f"{ALIASES}/tiny"), 404, "invalid_request_error", "not_found")
    assert_error(await user.client.get(f"{ALIASES}/tiny"), 404, "invalid_request_error", "not_found")
    assert_error(await user.client.get("/v1/models/tiny"), 404, "invalid_request_error", "model_not_found")
    assert await bodhi.resources.redis.hget(keys.local_aliases, "tiny") is None  # type: ignore[misc]
    assert (await user.client.get("/v1/models")).json() == {"object": "list", "data": []}


async def test_a_name_with_a_control_character_is_no_alias(power_user: Account) -> None:
    assert_error(await power_user.client.get(f"{ALIASES}/a%00b"), 404, "invalid_request_error", "not_found")
    assert_error(await power_user.client.delete(f"{ALIASES}/a%01b"), 404, "invalid_request_error", "not_found")


async def test_an_alias_without_a_local_worker_is_503_at_once(bodhi: InProcessApp, power_user: Account) -> None:
    model = await in_thread(write, bodhi.models_dir / "idle.gguf")
    assert (await power_user.client.post(ALIASES, json={"alias": "idle", "path": str(model)})).status_code == 201

    response = await power_user.client.post(
        "/v1/chat/completions", json={"model": "idle", "messages": [{"role": "user", "content": "hi"}]}
    )

    error = assert_error(response, 503, "api_error", "no_worker_available")
    assert "`idle`: no local worker serves it or follows the catalogue" in error["message"]
