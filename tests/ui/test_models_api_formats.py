"""The API model form in a browser for the other provider formats: an Anthropic API model with extra headers
(the quick pick, a refused header shown by its field, fetch, test, save, edit), and a keyless one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.support.fake_anthropic import AnthropicScript, FakeAnthropic
from tests.support.fake_upstream import FakeUpstream, Script
from tests.ui.conftest import check_accessibility, screenshot

API = "/bodhi/v1/models/api"
KEY = "sk-ant-ui-" + "5" * 24


@pytest.fixture
def claude() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def provider() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def test_an_anthropic_api_model_with_extra_headers(
    signed_in_page: Page, client: httpx.AsyncClient, claude: FakeAnthropic
) -> None:
    page = signed_in_page
    sonnet, haiku = unique("claude-sonnet"), unique("claude-haiku")
    claude.models = [sonnet, haiku]
    claude.scripts = {sonnet: AnthropicScript(pieces=["test successful"]), haiku: AnthropicScript()}
    claude.required_key = KEY
    name = unique("Claude")
    await page.goto("/ui/models/api/new/")

    # The formats, and the Anthropic quick pick: its URL and its format.
    await expect(page.get_by_label("API format").locator("option")).to_have_text(
        ["OpenAI chat completions", "OpenAI Responses API", "Anthropic Messages"]
    )
    await page.get_by_label("Anthropic", exact=True).check()
    await expect(page.get_by_label("Base URL")).to_have_value("https://api.anthropic.com/v1")
    await expect(page.get_by_label("API format")).to_have_value("anthropic")
    await page.get_by_label("Custom").check()
    await expect(page.get_by_label("API format")).to_have_value("anthropic")  # a custom URL keeps the format
    await page.get_by_label("Base URL").fill(claude.base_url)
    await page.get_by_label("Name (optional)").fill(name)
    await expect(page.locator("label[for=api_key]")).to_have_text("API key (optional)")
    await page.get_by_label("API key").fill(KEY)

    # Extra headers: a key-carrying one is refused by its field, and never echoed.
    await page.get_by_role("button", name="Add header").click()
    await expect(page.get_by_label("Header 1 name")).to_be_focused()
    await page.get_by_label("Header 1 name").fill("anthropic-beta")
    await page.get_by_label("Header 1 value").fill("tools-2024-04-04")
    await page.get_by_role("button", name="Add header").click()
    await page.get_by_label("Header 2 name").fill("Authorization")
    await page.get_by_label("Header 2 value").fill(f"Bearer {KEY}")
    await page.get_by_role("button", name="Fetch Models").click()
    await expect(page.locator("#extra_headers-error")).to_contain_text("goes in `api_key`")
    await expect(page.locator("#error-summary")).to_contain_text("`Authorization` is refused")
    await expect(page.locator("#error-summary")).not_to_contain_text(KEY)
    await screenshot(page, "models-api-headers-error")
    await page.get_by_role("button", name="Remove header 2").click()
    await expect(page.locator("#header-rows .header-row")).to_have_count(1)

    # Fetch and test, in Anthropic's format with the headers.
    await page.get_by_role("button", name="Fetch Models").click()
    await expect(page.locator("#fetch-status")).to_have_text("2 models found.")
    await page.locator("#model-options").get_by_label(sonnet, exact=True).check()
    await page.get_by_role("button", name="Test Connection").click()
    await expect(page.locator("#test-result")).to_contain_text("Connection successful")
    await expect(page.locator("#test-result")).to_contain_text("test successful")
    tested = claude.requests_for(sonnet)[-1]
    assert (tested.headers["x-api-key"], tested.headers["anthropic-beta"]) == (KEY, "tools-2024-04-04")
    assert "authorization" not in tested.headers
    assert claude.model_list_requests[-1].headers["anthropic-beta"] == "tools-2024-04-04"
    await check_accessibility(page)
    await screenshot(page, "models-api-anthropic")

    # Save, and it serves chat completions through the Anthropic provider.
    await page.get_by_role("button", name="Create API model").click()
    await page.wait_for_url("**/ui/models/")
    row = page.locator("#models-rows tr").filter(has_text=name)
    await expect(row).to_contain_text("Anthropic")
    answer = await client.post(
        "/v1/chat/completions", json={"model": sonnet, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert answer.json()["choices"][0]["message"]["content"] == "test successful"
    saved = next(m for m in (await client.get(API)).json()["data"] if m["name"] == name)
    assert (saved["api_format"], saved["extra_headers"]) == ("anthropic", {"anthropic-beta": "tools-2024-04-04"})

    # Editing shows the headers as rows.
    await page.goto(f"/ui/models/api/edit/?id={saved['id']}")
    await expect(page.get_by_label("Header 1 name")).to_have_value("anthropic-beta")
    await expect(page.get_by_label("Header 1 value")).to_have_value("tools-2024-04-04")
    await expect(page.get_by_label("API format")).to_have_value("anthropic")


async def test_a_keyless_api_model(signed_in_page: Page, client: httpx.AsyncClient, provider: FakeUpstream) -> None:
    page = signed_in_page
    model = unique("local-llm")
    provider.scripts = {model: Script(text="local")}
    name = unique("LAN server")
    await page.goto("/ui/models/api/new/")
    await page.get_by_label("Custom").check()
    await page.get_by_label("Base URL").fill(provider.base_url)
    await page.get_by_label("Name (optional)").fill(name)
    await page.get_by_role("button", name="Fetch Models").click()  # no key
    await page.locator("#model-options").get_by_label(model, exact=True).check()
    await page.get_by_role("button", name="Create API model").click()
    await page.wait_for_url("**/ui/models/")

    assert "authorization" not in provider.model_list_requests[-1].headers
    saved = next(m for m in (await client.get(API)).json()["data"] if m["name"] == name)
    assert (saved["has_api_key"], saved["api_key_hint"]) == (False, "")
    await page.goto(f"/ui/models/api/edit/?id={saved['id']}")
    await expect(page.locator("#api_key-hint")).to_contain_text("This API model has no key")
    await page.get_by_label("Base URL").fill(provider.base_url + "/")  # no "enter the key" warning: there is none
    await expect(page.locator("#api_key-warning")).to_be_hidden()
    answer = await client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert answer.status_code == 200, answer.text
    assert "authorization" not in provider.requests_for(model)[-1].headers
