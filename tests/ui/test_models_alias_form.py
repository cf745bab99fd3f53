"""The local alias form in a browser, and the route listing the GGUF files it offers (``/bodhi/v1/models/files``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from bodhi_api.local_aliases.gguf_files import FoundFile, list_gguf_files
from tests.conftest import Gateway
from tests.support.tiny_gguf import write_tiny_llama_gguf
from tests.ui.conftest import MakeUser, check_accessibility, screenshot

ALIASES = "/bodhi/v1/models/alias"
FILES = "/bodhi/v1/models/files"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def models_dir(gateway: Gateway) -> Path:
    return Path(gateway.env["BODHI_HOME"]) / "models"


def test_gguf_files_are_found_in_the_models_folder_and_the_hf_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "models"
    local = write_tiny_llama_gguf(folder / "b" / "local.gguf")
    (folder / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("not a model")
    repo = tmp_path / "hf" / "hub" / "models--owner--repo"
    old, new = repo / "snapshots" / "old", repo / "snapshots" / "new"
    write_tiny_llama_gguf(old / "tiny.Q8_0.gguf")
    cached = write_tiny_llama_gguf(new / "tiny.Q8_0.gguf")
    os.utime(old, (1, 1))  # the older snapshot: its copy of the same file is not offered
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    size = local.stat().st_size
    assert list_gguf_files(folder) == [
        FoundFile(path=local, filename="b/local.gguf", repo=None, size_bytes=size),
        FoundFile(path=cached, filename="tiny.Q8_0.gguf", repo="owner/repo", size_bytes=size),
    ]
    assert list_gguf_files(tmp_path / "absent") == [
        FoundFile(path=cached, filename="tiny.Q8_0.gguf", repo="owner/repo", size_bytes=size)
    ]


async def test_the_files_route_lists_the_models_folder(
    gateway: Gateway, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    name = unique("listed")
    path = write_tiny_llama_gguf(models_dir(gateway) / "sub" / f"{name}.gguf")
    (models_dir(gateway) / f"{name}.txt").write_text("not a model")

    listed = await client.get(FILES)
    assert listed.status_code == 200, listed.text
    assert listed.json()["models_dir"] == str(models_dir(gateway))
    entries = [e for e in listed.json()["data"] if name in e["filename"]]
    assert entries == [
        {
            "path": str(path),
            "filename": f"sub/{name}.gguf",
            "repo": None,
            "source": "models_dir",
            "size_bytes": path.stat().st_size,
        }
    ]

    user = await make_user("user")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        login = await http.post("/bodhi/v1/auth/login", json={"username": user.username, "password": user.password})
        assert login.status_code == 200
        assert (await http.get(FILES)).status_code == 403  # server paths are for those who may make aliases


async def choose_file(page: Page, filename: str) -> None:
    option = page.get_by_label("GGUF file").locator("option").filter(has_text=filename)
    value = await option.get_attribute("value")
    assert value
    await page.get_by_label("GGUF file").select_option(value)


async def test_an_alias_from_a_file_the_server_found(
    signed_in_page: Page, gateway: Gateway, client: httpx.AsyncClient
) -> None:
    page = signed_in_page
    alias, filename = unique("tiny-found"), f"{unique('found')}.Q8_0.gguf"
    path = write_tiny_llama_gguf(models_dir(gateway) / filename)

    await page.goto("/ui/models/")
    await page.get_by_role("link", name="New local alias").click()
    await page.wait_for_url("**/ui/models/alias/new/")
    await expect(page.get_by_label("A file the server found")).to_be_checked()
    await expect(page.locator("#models-dir")).to_have_text(str(models_dir(gateway)))
    await page.get_by_label("Alias").fill(alias)
    await choose_file(page, filename)
    await page.get_by_label("Context length").fill("256")
    await page.get_by_label("GPU layers").fill("0")
    await page.get_by_label("Threads").fill("2")
    await page.get_by_label("Memory-map the file").select_option("false")
    await page.get_by_label("Temperature").fill("0.2")
    await page.get_by_label("Top p").fill("0.9")
    await page.get_by_label("Maximum tokens").fill("64")
    await page.get_by_label("Seed").fill("7")
    await page.get_by_label("Stop sequences").fill("</s>\nUser:")
    await page.get_by_label("System prompt").fill("Be brief.")
    await check_accessibility(page)
    await screenshot(page, "models-alias-new")

    await page.get_by_role("button", name="Create local alias").click()
    await page.wait_for_url("**/ui/models/")
    listed = page.locator("#models-rows tr").filter(has_text=alias)
    await expect(listed.locator(".badge")).to_have_text("model")
    await expect(listed).to_contain_text(filename)
    saved = (await client.get(f"{ALIASES}/{alias}")).json()
    assert saved["path"] == str(path.resolve())
    assert saved["context_params"] == {"n_ctx": 256, "n_gpu_layers": 0, "n_threads": 2, "use_mmap": False}
    assert saved["request_params"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 7,
        "stop": ["</s>", "User:"],
        "system_prompt": "Be brief.",
    }

    # Editing shows what was saved; a change is kept, the rest stays.
    await listed.get_by_role("link", name=f"Edit {alias}").click()
    await page.wait_for_url("**/ui/models/alias/edit/**")
    await expect(page.get_by_label("Alias")).to_have_value(alias)
    await expect(page.get_by_label("Alias")).to_have_attribute("readonly", "")
    await expect(page.get_by_label("Context length")).to_have_value("256")
    await expect(page.get_by_label("Stop sequences")).to_have_value("</s>\nUser:")
    await expect(page.get_by_label("Memory-map the file")).to_have_value("false")
    await expect(page.get_by_label("GGUF file")).not_to_have_value("")
    await check_accessibility(page)
    await screenshot(page, "models-alias-edit")
    await page.get_by_label("Context length").fill("128")
    await page.get_by_role("button", name="Save local alias").click()
    await page.wait_for_url("**/ui/models/")
    edited = (await client.get(f"{ALIASES}/{alias}")).json()
    assert edited["context_params"]["n_ctx"] == 128
    assert edited["request_params"]["system_prompt"] == "Be brief."


async def test_an_alias_from_a_typed_path_and_a_bad_path_shown_by_its_field(
    signed_in_page: Page, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    page = signed_in_page
    alias = unique("tiny-typed")
    elsewhere = write_tiny_llama_gguf(tmp_path / "elsewhere" / "tiny.gguf")
    await page.goto("/ui/models/alias/new/")
    await page.get_by_label("Alias").fill(alias)
    await expect(page.get_by_label("Path", exact=True)).to_be_hidden()
    await page.get_by_label("Type a path").check()
    await expect(page.get_by_label("GGUF file")).to_be_hidden()

    missing = tmp_path / "nothing-here.gguf"
    await page.get_by_label("Path", exact=True).fill(str(missing))
    await page.get_by_role("button", name="Create local alias").click()
    await expect(page.locator("#path-error")).to_contain_text(f"no file at {missing}")
    await expect(page.get_by_label("Path", exact=True)).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#error-summary a[href='#path']")).to_be_visible()
    await check_accessibility(page)
    await screenshot(page, "models-alias-error")

    # A parameter the API refuses is shown by its own field.
    await page.get_by_label("Path", exact=True).fill(str(elsewhere))
    await page.get_by_label("Top p").fill("2")
    await page.get_by_role("button", name="Create local alias").click()
    await expect(page.locator("#request_params-top_p-error")).to_contain_text("top_p")
    await expect(page.locator("#path-error")).to_be_hidden()

    await page.get_by_label("Top p").fill("")
    await page.get_by_role("button", name="Create local alias").click()
    await page.wait_for_url("**/ui/models/")
    await expect(page.locator("#models-rows tr").filter(has_text=alias)).to_be_visible()
    assert (await client.get(f"{ALIASES}/{alias}")).json()["path"] == str(elsewhere.resolve())


async def test_choosing_no_file_is_explained(signed_in_page: Page, gateway: Gateway) -> None:
    page = signed_in_page
    write_tiny_llama_gguf(models_dir(gateway) / f"{unique('offered')}.gguf")  # so that there is a list to choose from
    await page.goto("/ui/models/alias/new/")
    await expect(page.get_by_label("A file the server found")).to_be_checked()
    await page.get_by_label("Alias").fill(unique("no-file"))
    await page.get_by_role("button", name="Create local alias").click()
    await expect(page.locator("#found-file-error")).to_contain_text("Choose a GGUF file")
