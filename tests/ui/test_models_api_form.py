"""The API model form in a browser: the seed's eight steps against a fake provider, editing, and its errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.support.fake_upstream import FakeUpstream, Script, free_port
from tests.ui.conftest import check_accessibility, screenshot

API = "/bodhi/v1/models/api"
KEY = "sk-ui-walkthrough-" + "7" * 20
WRONG_KEY = "sk-ui-wrong-" + "0" * 20


@pytest.fixture
def provider() -> Iterator[FakeUpstream]:
    """A provider of this test's own, so its model list and key rules touch no other test."""
    upstream = FakeUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def chat(client: httpx.AsyncClient, model: str) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )


def option(page: Page, model: str) -> Any:
    return page.locator("#model-options").get_by_label(model, exact=True)


async def stub_chat_page(page: Page) -> None:
    """Answer /ui/chat/ with a blank page: only the link is under test here, not the chat page's own script."""
    await page.route("**/ui/chat/**", lambda route: route.fulfill(status=200, content_type="text/plain", body="chat"))


async def test_the_seed_walkthrough_in_the_browser(
    signed_in_page: Page, client: httpx.AsyncClient, provider: FakeUpstream
) -> None:
    page = signed_in_page
    gpt4, mini, extra = unique("gpt-4"), unique("gpt-4o-mini"), unique("o3")
    provider.scripts = {gpt4: Script(text="four"), mini: Script(text="mini"), extra: Script(text="extra")}
    provider.models_required_key = KEY
    name, prefix = unique("Fake OpenAI"), unique("fake") + "/"

    # Step 1: from the models page.
    await page.goto("/ui/models/")
    await page.get_by_role("link", name="New API Model").click()
    await page.wait_for_url("**/ui/models/api/new/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("New API model")

    # Step 2: the format, and the base URL the provider quick picks fill in.
    await expect(page.get_by_label("API format")).to_have_value("openai")
    await expect(page.get_by_label("API format").locator("option")).to_have_text(
        ["OpenAI chat completions", "OpenAI Responses API", "Anthropic Messages"]
    )
    base_url = page.get_by_label("Base URL")
    await expect(base_url).to_have_value("https://api.openai.com/v1")  # OpenAI auto-fills
    await page.get_by_label("OpenRouter").check()
    await expect(base_url).to_have_value("https://openrouter.ai/api/v1")
    await page.get_by_label("HuggingFace").check()
    await expect(base_url).to_have_value("https://router.huggingface.co/v1")
    await page.get_by_label("Custom").check()
    await expect(base_url).to_have_value("")
    await expect(base_url).to_be_focused()
    await expect(page.locator("#base_url-hint")).to_contain_text("/chat/completions")
    await base_url.fill(provider.base_url)
    await page.get_by_label("Name (optional)").fill(name)

    # Step 3: the key, masked; a wrong one makes Fetch Models say "Invalid API key" by the key field.
    api_key = page.get_by_label("API key")
    await expect(api_key).to_have_attribute("type", "password")
    await api_key.fill(WRONG_KEY)
    await page.get_by_role("button", name="Fetch Models").click()
    await expect(page.locator("#api_key-error")).to_contain_text("Invalid API key")
    await expect(page.locator("#error-summary")).to_contain_text("Invalid API key")
    await expect(page.locator("#error-summary")).not_to_contain_text(WRONG_KEY)
    await check_accessibility(page)
    await screenshot(page, "models-api-error")

    # Step 4: the prefix.
    await expect(page.get_by_label("Prefix", exact=True)).to_be_hidden()
    await page.get_by_label("Enable prefix").check()
    await page.get_by_label("Prefix", exact=True).fill(prefix)
    await expect(page.locator("#prefix-hint")).to_contain_text("32")

    # Steps 5-6: fetch with the right key; search and pick two, shown as chips.
    await api_key.fill(KEY)
    await page.get_by_role("button", name="Fetch Models").click()
    await expect(page.locator("#fetch-status")).to_have_text("3 models found.")
    await expect(page.locator("#api_key-error")).to_be_hidden()
    await expect(page.locator("#model-options label")).to_have_text(sorted([gpt4, mini, extra]))
    await page.get_by_label("Search the models").fill("gpt-4")
    await expect(page.locator("#model-options label")).to_have_count(2)
    await option(page, gpt4).check()
    await option(page, mini).check()
    await page.get_by_label("Search the models").fill("")
    await expect(page.locator("#model-chips .chip-label")).to_have_text([gpt4, mini])
    await expect(page.locator("#models-count")).to_have_text("2 of at most 50 models selected.")

    # Step 7: test connection, with the first selected model and the form's key.
    await page.get_by_role("button", name="Test Connection").click()
    await expect(page.locator("#test-result")).to_contain_text("Connection successful")
    await expect(page.locator("#test-result")).to_contain_text("four0 four1 four2")
    assert provider.requests[-1].body["model"] == gpt4
    assert provider.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    await check_accessibility(page)
    await screenshot(page, "models-api-new")

    # Step 8: create, back to the models page, where it is listed with its badge and chat links.
    await page.get_by_role("button", name="Create API model").click()
    await page.wait_for_url("**/ui/models/")
    created = page.locator("#models-rows tr").filter(has_text=name)
    await expect(created.locator(".badge")).to_have_text("☁️ API")
    await expect(created.locator(".model-links a")).to_have_text([f"{prefix}{gpt4}", f"{prefix}{mini}"])
    await stub_chat_page(page)
    await created.get_by_role("link", name=f"{prefix}{mini}").click()
    await page.wait_for_url(lambda url: "/ui/chat/" in url)
    assert httpx.URL(page.url).params["model"] == f"{prefix}{mini}"

    # And it serves: a chat through the API reaches the provider with the key the form sent.
    answer = await chat(client, f"{prefix}{gpt4}")
    assert answer.status_code == 200, answer.text
    assert provider.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_a_failed_connection_test_shows_the_seed_message(signed_in_page: Page, provider: FakeUpstream) -> None:
    page = signed_in_page
    model = unique("gone")
    provider.scripts = {model: Script(status=404)}
    await page.goto("/ui/models/api/new/")
    await page.get_by_label("Base URL").fill(provider.base_url)
    await page.get_by_label("API key").fill(KEY)
    await page.get_by_role("button", name="Fetch Models").click()
    await option(page, model).check()
    await page.get_by_role("button", name="Test Connection").click()
    await expect(page.locator("#test-result")).to_contain_text("Model not found")
    await expect(page.locator("#test-result")).not_to_contain_text(KEY)


async def create_api_model(client: httpx.AsyncClient, provider: FakeUpstream, models: list[str]) -> Any:
    body = {"name": unique("ui-edit"), "base_url": provider.base_url, "api_key": KEY, "models": models}
    created = await client.post(API, json=body | {"prefix": unique("ed") + "/"})
    assert created.status_code == 201, created.text
    return created.json()


async def test_editing_without_a_key_keeps_the_stored_key(
    signed_in_page: Page, client: httpx.AsyncClient, provider: FakeUpstream
) -> None:
    page = signed_in_page
    first, second = unique("kept"), unique("added")
    provider.models_ids = [first, second]
    provider.models_required_key = KEY
    saved = await create_api_model(client, provider, [first])

    await page.goto("/ui/models/")
    await page.get_by_role("link", name=f"Edit {saved['name']}").click()
    await page.wait_for_url(f"**/ui/models/api/edit/?id={saved['id']}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Edit API model")
    await expect(page.get_by_label("Base URL")).to_have_value(provider.base_url)
    await expect(page.get_by_label("Custom")).to_be_checked()
    await expect(page.get_by_label("API key")).to_have_value("")
    await expect(page.get_by_label("API key")).to_have_attribute(
        "placeholder", "Stored key sk-...7777: leave blank to keep it"
    )
    await expect(page.get_by_label("Enable prefix")).to_be_checked()
    await expect(page.get_by_label("Prefix", exact=True)).to_have_value(saved["prefix"])
    await expect(page.locator("#model-chips .chip-label")).to_have_text([first])

    # Fetch Models with the key field blank: the saved model's stored key is used.
    await page.get_by_role("button", name="Fetch Models").click()
    await expect(page.locator("#fetch-status")).to_have_text("2 models found.")
    await option(page, second).check()
    await page.get_by_role("button", name="Test Connection").click()
    await expect(page.locator("#test-result")).to_contain_text("Connection successful")
    await check_accessibility(page)
    await screenshot(page, "models-api-edit")

    await page.get_by_role("button", name="Save API model").click()
    await page.wait_for_url("**/ui/models/")
    edited = (await client.get(f"{API}/{saved['id']}")).json()
    assert edited["models"] == [first, second]
    assert edited["api_key_hint"] == "sk-...7777"
    answer = await chat(client, f"{saved['prefix']}{second}")
    assert answer.status_code == 200, answer.text
    assert provider.requests[-1].headers["authorization"] == f"Bearer {KEY}"  # still the original key


async def test_a_new_base_url_asks_for_the_key_by_its_field(
    signed_in_page: Page, client: httpx.AsyncClient, provider: FakeUpstream
) -> None:
    page = signed_in_page
    saved = await create_api_model(client, provider, [unique("stays")])
    moved = f"http://127.0.0.1:{free_port()}/v1"
    await page.goto(f"/ui/models/api/edit/?id={saved['id']}")
    await expect(page.get_by_label("Base URL")).to_have_value(provider.base_url)
    await expect(page.locator("#api_key-warning")).to_be_hidden()

    # Said next to the key field as soon as the URL changes, before saving.
    await page.get_by_label("Base URL").fill(moved)
    await expect(page.locator("#api_key-warning")).to_contain_text(f"enter the API key for {moved}")
    await page.get_by_role("button", name="Save API model").click()
    await expect(page.locator("#api_key-error")).to_contain_text("A new `base_url` needs its `api_key` too")
    await expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#error-summary a[href='#api_key']")).to_be_visible()
    assert "/ui/models/api/edit/" in page.url
    assert (await client.get(f"{API}/{saved['id']}")).json()["base_url"] == provider.base_url
    await check_accessibility(page)
    await screenshot(page, "models-api-edit-error")

    # Typing a key takes the warning away.
    await page.get_by_label("API key").fill(KEY)
    await expect(page.locator("#api_key-warning")).to_be_hidden()


async def test_the_api_rules_are_shown_by_their_fields(signed_in_page: Page, provider: FakeUpstream) -> None:
    page = signed_in_page
    await page.goto("/ui/models/api/new/")
    await page.get_by_role("button", name="Create API model").click()
    await expect(page.locator("#models-error")).to_contain_text("Select at least one model")

    # A model id typed in the search box is added without a fetch.
    typed = unique("typed-model")
    await page.get_by_label("Search the models").fill(typed)
    await page.get_by_role("button", name=f"Add “{typed}”").click()
    await expect(page.locator("#model-chips .chip-label")).to_have_text([typed])

    await page.get_by_label("Base URL").fill(f"{provider.base_url}/chat/completions")
    await page.get_by_label("API key").fill(KEY)
    await page.get_by_role("button", name="Create API model").click()
    await expect(page.locator("#base_url-error")).to_contain_text(f"use {provider.base_url}")

    await page.get_by_label("Base URL").fill(provider.base_url)
    await page.get_by_label("Enable prefix").check()
    await page.get_by_label("Prefix", exact=True).fill("has space/")
    await page.get_by_role("button", name="Create API model").click()
    await expect(page.locator("#prefix-error")).to_contain_text("without spaces")
    await expect(page.locator("#base_url-error")).to_be_hidden()
    await check_accessibility(page)

    # A chip's remove button takes the model out again.
    await page.get_by_role("button", name=f"Remove {typed}").click()
    await expect(page.locator("#model-chips .chip")).to_have_count(0)


async def test_at_most_fifty_models_are_selected(signed_in_page: Page, provider: FakeUpstream) -> None:
    page = signed_in_page
    provider.models_ids = [f"model-{i:02d}" for i in range(60)]
    await page.goto("/ui/models/api/new/")
    await page.get_by_label("Base URL").fill(provider.base_url)
    await page.get_by_label("API key").fill(KEY)
    await page.get_by_role("button", name="Fetch Models").click()
    await expect(page.locator("#fetch-status")).to_have_text("60 models found.")
    await page.get_by_role("button", name="Select all shown").click()
    await expect(page.locator("#model-chips .chip")).to_have_count(50)
    await expect(page.locator("#models-limit")).to_be_visible()
    await expect(page.locator("#models-limit")).to_contain_text("the most one API model may serve")
    await expect(option(page, "model-55")).to_be_disabled()
    await option(page, "model-00").uncheck()
    await expect(page.locator("#models-limit")).to_be_hidden()
    await expect(option(page, "model-55")).to_be_enabled()


async def test_the_api_form_fits_a_phone(signed_in_page: Page) -> None:
    page = signed_in_page
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/ui/models/api/new/")
    await page.get_by_label("Enable prefix").check()
    await page.get_by_label("Search the models").fill("a-model-id-that-is-long-enough-to-wrap-on-a-phone")
    await page.get_by_role("button", name="Add “a-model-id-that-is-long-enough-to-wrap-on-a-phone”").click()
    await screenshot(page, "models-api-phone")
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await check_accessibility(page)
