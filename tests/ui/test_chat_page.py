"""The chat page itself: the model selector, errors in the conversation, accessibility, light, dark and phone."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from playwright.async_api import Page, expect
from starlette.requests import Request

from bodhi_api.auth.roles import Role
from bodhi_api.auth.users import User
from bodhi_api.ui.pages import Page as UiPage
from bodhi_api.ui.pages import Pages
from tests.conftest import TEST_API_KEY, RegisterUpstream
from tests.support.fake_upstream import FakeUpstream, Script
from tests.ui.chat_page import ChatPage, screenshot_chat
from tests.ui.conftest import MakeUser, check_accessibility, log_in


def test_the_template_renders_with_the_markdown_libraries() -> None:
    app = FastAPI()
    app.state.ui_pages = Pages()
    someone = User(id=uuid.uuid4(), username="someone", role=Role.USER)
    page = UiPage(request=Request({"type": "http", "app": app, "headers": []}), user=someone)
    rendered = bytes(page.render("chat.html", kind="chat", title="Chat", vendor=("markdown",)).body).decode()
    assert '<a href="/ui/chat/" aria-current="page">Chat</a>' in rendered
    for script in ("marked.umd.js", "purify.min.js", "highlight.min.js", "js/chat.js"):
        assert script in rendered
    assert "<script>" not in rendered
    assert "style=" not in rendered


async def test_the_empty_chat_page_is_accessible(signed_in_page: Page, register_upstream: RegisterUpstream) -> None:
    await register_upstream(Script())
    page = signed_in_page
    chat = await ChatPage(page).open()
    await expect(chat.title).to_have_text("New chat")
    await expect(page.locator("#chat-empty")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Chat")).to_have_attribute(
        "aria-current", "page"
    )
    await check_accessibility(page)
    await screenshot_chat(page, "chat-empty")


async def test_the_page_needs_a_session_then_keeps_the_model_asked_for(page: Page, make_user: MakeUser) -> None:
    await page.goto("/ui/chat/?model=some-model")
    assert page.url.endswith("/ui/login/?next=/ui/chat/%3Fmodel%3Dsome-model")
    await log_in(page, await make_user("user"))
    assert page.url.endswith("/ui/chat/?model=some-model")
    await expect(ChatPage(page).model).to_have_value("some-model")


async def test_the_model_selector_groups_by_source_and_is_used_with_the_keyboard(
    signed_in_page: Page, client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    tag = uuid.uuid4().hex[:6]
    created = await client.post(
        "/bodhi/v1/models/api",
        json={
            "name": f"Grouped {tag}",
            "base_url": fake_upstream.base_url,
            "api_key": TEST_API_KEY,
            "prefix": f"g{tag}/",
            "models": ["alpha", "beta"],
        },
    )
    assert created.status_code == 201, created.text
    alpha, beta = f"g{tag}/alpha", f"g{tag}/beta"
    page = signed_in_page
    chat = await ChatPage(page).open(model=alpha)
    await expect(chat.model).to_have_value(alpha)  # ?model= preselects

    listbox = page.get_by_role("listbox", name="Models")
    await chat.model.click()
    await expect(listbox).to_be_visible()
    await expect(chat.model).to_have_attribute("aria-expanded", "true")
    group = listbox.get_by_role("group", name=f"Grouped {tag} (API model)")
    await expect(group.get_by_role("option")).to_have_text([alpha, beta])
    labels = await listbox.locator(".combobox-group-label").all_inner_texts()
    first = [label for label in ("Routers", "Local models") if label in labels]
    assert labels[: len(first)] == first  # routers, then local models, when there are any, come first
    assert not any("undefined" in label for label in labels)
    await check_accessibility(page)
    await screenshot_chat(page, "chat-model-list")

    await chat.model.fill(f"{tag}/be")  # typing filters
    await expect(listbox.get_by_role("option")).to_have_text([beta])
    await chat.model.press("ArrowDown")
    option_id = await listbox.get_by_role("option", name=beta).get_attribute("id")
    await expect(chat.model).to_have_attribute("aria-activedescendant", option_id or "")
    await chat.model.press("Enter")
    await expect(chat.model).to_have_value(beta)
    await expect(listbox).to_be_hidden()
    await expect(chat.model).to_have_attribute("aria-expanded", "false")

    await chat.model.press("ArrowDown")  # opens the whole list again
    await expect(listbox).to_be_visible()
    await chat.model.press("Escape")
    await expect(listbox).to_be_hidden()

    await chat.model.fill("no-such-model-anywhere")
    await expect(page.get_by_text("No served model matches.")).to_be_visible()
    await chat.model.press("Enter")
    await expect(page.locator("#chat-model-warning")).to_contain_text("“no-such-model-anywhere” is not served now")


async def test_errors_are_shown_in_the_conversation_with_the_api_message(
    signed_in_page: Page, register_upstream: RegisterUpstream
) -> None:
    refused = {
        "error": {
            "message": "This model's maximum context length is 8 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    http_error = await register_upstream(Script(status=400, error_body=refused))
    in_band = await register_upstream(Script(chunks=4, delay=0.1, error_after=2))
    page = signed_in_page
    chat = await ChatPage(page).open(model=http_error)

    failed = await chat.ask("A long question")
    await expect(failed.locator(".chat-error-message")).to_have_text("This model's maximum context length is 8 tokens.")
    await expect(failed.locator(".chat-error-details")).to_have_text("HTTP 400 · context_length_exceeded")
    await expect(page.get_by_role("status")).to_have_text(
        "The model could not answer: This model's maximum context length is 8 tokens."
    )

    await chat.choose_model(in_band)
    cut = await chat.ask("Another question")
    await expect(chat.body(cut)).to_have_text("tok0 tok1")  # what arrived before the error stays
    await expect(cut.locator(".chat-error-message")).to_have_text("overloaded mid-stream")
    await expect(cut.locator(".chat-error-details")).to_have_text("overloaded")
    await expect(chat.send_button).to_be_enabled()

    await check_accessibility(page)
    await screenshot_chat(page, "chat-error")


async def test_the_chat_page_fits_a_phone(signed_in_page: Page, register_upstream: RegisterUpstream) -> None:
    model = await register_upstream(Script(chunks=3, text="A **short** answer with `code`. "))
    page = signed_in_page
    await page.set_viewport_size({"width": 375, "height": 740})
    chat = await ChatPage(page).open(model=model)
    settings = page.locator("#chat-settings")
    await expect(settings).not_to_have_attribute("open", "")  # folded on a small screen
    await expect(page.get_by_label("Temperature")).to_be_hidden()

    await chat.ask("Hello from a phone")

    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await check_accessibility(page)
    await screenshot_chat(page, "chat-phone")
    await page.get_by_text("Settings", exact=True).click()
    await expect(page.get_by_label("Temperature")).to_be_visible()
    await screenshot_chat(page, "chat-phone-settings")
