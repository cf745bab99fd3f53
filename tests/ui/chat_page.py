"""Driving the chat page (``/ui/chat/``) as a person would: its model selector, composer and saved chats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import quote

from playwright.async_api import Locator, Page, expect

from tests.support.fake_upstream import FakeUpstream, RecordedRequest
from tests.ui.conftest import screenshot


class ChatPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.model = page.get_by_role("combobox", name="Model")
        self.message = page.get_by_label("Message", exact=True)
        self.send_button = page.get_by_role("button", name="Send")
        self.stop_button = page.get_by_role("button", name="Stop")
        self.answers = page.locator(".chat-message-assistant")
        self.questions = page.locator(".chat-message-user .chat-message-body")  # what the user wrote
        self.saved = page.get_by_role("list", name="Saved chats").get_by_role("listitem")
        self.title = page.get_by_role("heading", level=1)

    async def open(self, *, model: str | None = None, chat_id: str | None = None) -> ChatPage:
        query = f"?model={quote(model, safe='')}" if model else ""
        await self.page.goto(f"/ui/chat/{query}{'#' + chat_id if chat_id else ''}")
        await self.ready()
        return self

    async def ready(self) -> None:
        await expect(self.page.locator("body[data-chat-ready]")).to_be_attached()

    async def choose_model(self, model: str) -> None:
        """Type part of the id, then pick it from the list with the keyboard."""
        await self.model.fill(model[-6:])
        option = self.page.get_by_role("option", name=model, exact=True)
        await expect(option).to_be_visible()
        while await self.model.get_attribute("aria-activedescendant") != await option.get_attribute("id"):
            await self.model.press("ArrowDown")
        await self.model.press("Enter")
        await expect(self.model).to_have_value(model)

    async def send(self, text: str) -> None:
        await self.message.fill(text)
        await self.send_button.click()

    async def ask(self, text: str) -> Locator:
        """Send ``text`` and wait for the answer to end; returns the answer."""
        count = await self.answers.count()
        await self.send(text)
        answer = self.answers.nth(count)
        await expect(answer).to_be_visible()
        await expect(answer).not_to_have_attribute("aria-busy", "true", timeout=20_000)
        return answer

    def body(self, answer: Locator) -> Locator:
        return answer.locator(".chat-message-body")

    def chat_id(self) -> str:
        return self.page.url.partition("#")[2]


async def recorded(
    upstream: FakeUpstream, model: str, until: Callable[[RecordedRequest], bool] = lambda _: True, *, within: float = 10
) -> RecordedRequest:
    """The last request the fake provider recorded for ``model``, once ``until`` holds for it."""
    deadline = time.monotonic() + within
    while True:
        requests = upstream.requests_for(model)
        if requests and until(requests[-1]):
            return requests[-1]
        assert time.monotonic() < deadline, f"no request for {model} matched within {within}s: {requests}"
        await asyncio.sleep(0.05)


async def screenshot_chat(page: Page, name: str) -> None:
    """``screenshot`` with a viewport as tall as the page: the composer sticks to the viewport's bottom, and a
    full-page capture of the usual viewport would paint it over the end of the conversation."""
    size = page.viewport_size
    assert size is not None
    height = await page.evaluate(
        "() => Math.ceil(document.querySelector('main').getBoundingClientRect().bottom + scrollY)"
    )
    await page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    try:
        await screenshot(page, name)
    finally:
        await page.set_viewport_size(size)
