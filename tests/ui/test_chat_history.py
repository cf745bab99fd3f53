"""Chats kept in the browser: they survive a reload, are renamed and deleted, outlive their model, and one chat
may talk to a local model and an API model in turn."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from tests.bodhi_api.test_local_models import LocalWorkers, add_alias, local_workers, served_by, tiny_models
from tests.conftest import RegisterUpstream
from tests.support.fake_upstream import FakeUpstream, Script
from tests.ui.chat_page import ChatPage, recorded

__all__ = ["local_workers", "tiny_models"]  # fixtures of the local model tests, used here


async def test_chats_survive_a_reload_and_are_renamed_and_deleted(
    signed_in_page: Page, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=2, text="saved"))
    page = signed_in_page
    chat = await ChatPage(page).open(model=model)
    await chat.ask("First chat question")
    await page.get_by_role("button", name="New chat").click()
    await expect(chat.title).to_have_text("New chat")
    await expect(chat.questions).to_have_count(0)
    await expect(chat.model).to_have_value(model)  # a new chat keeps the model
    await chat.ask("Second chat question")

    await page.reload()
    await chat.ready()
    await expect(chat.saved).to_have_count(2)
    await expect(chat.saved.nth(0)).to_contain_text("Second chat question")  # the latest first
    await expect(chat.questions).to_have_text(["Second chat question"])  # the address names the open chat

    await page.get_by_role("link", name=re.compile("First chat question")).click()
    await expect(chat.title).to_have_text("First chat question")
    await expect(chat.questions).to_have_text(["First chat question"])
    await expect(chat.body(chat.answers.first)).to_have_text("saved0 saved1")
    await expect(chat.answers.first.locator(".chat-usage")).to_be_visible()

    await page.get_by_role("button", name="Rename chat “First chat question”").click()
    await page.get_by_label("Chat name").fill("Renamed chat")
    await page.get_by_label("Chat name").press("Enter")
    await expect(chat.title).to_have_text("Renamed chat")
    await expect(page.get_by_role("button", name="Rename chat “Renamed chat”")).to_be_focused()

    await page.reload()
    await chat.ready()
    await expect(page.get_by_role("link", name=re.compile("Renamed chat"))).to_be_visible()
    delete = page.get_by_role("button", name="Delete chat “Renamed chat”")
    await delete.click()
    question = page.get_by_role("dialog", name="Delete this chat?")
    await expect(question).to_contain_text("“Renamed chat” and its messages are removed from this browser.")
    await question.get_by_role("button", name="Cancel").click()
    await expect(chat.saved).to_have_count(2)
    await expect(delete).to_be_focused()
    await delete.click()
    await question.get_by_role("button", name="Delete chat").click()
    await expect(chat.saved).to_have_count(1)
    await expect(page.get_by_role("button", name="New chat")).to_be_focused()
    await expect(chat.title).to_have_text("New chat")  # the open chat was the one deleted

    await page.reload()
    await chat.ready()
    await expect(chat.saved).to_have_count(1)
    await expect(chat.saved.first).to_contain_text("Second chat question")


async def test_a_chat_whose_model_was_deleted_stays_readable_and_says_why_it_cannot_go_on(
    signed_in_page: Page, register_upstream: RegisterUpstream, client: httpx.AsyncClient
) -> None:
    model = await register_upstream(Script(chunks=2, text="kept"))
    page = signed_in_page
    chat = await ChatPage(page).open(model=model)
    await chat.ask("Before the deletion")
    listed = (await client.get("/bodhi/v1/models")).json()["data"]
    api_model_id = next(entry["api_model_id"] for entry in listed if entry["id"] == model)
    assert (await client.delete(f"/bodhi/v1/models/api/{api_model_id}")).status_code == 204

    await chat.open()
    await page.get_by_role("link", name=re.compile("Before the deletion")).click()
    await expect(chat.questions).to_have_text(["Before the deletion"])
    await expect(chat.body(chat.answers.first)).to_have_text("kept0 kept1")
    await expect(chat.model).to_have_value(model)
    await expect(page.locator("#chat-model-warning")).to_contain_text("is not served now")

    failed = await chat.ask("After the deletion")
    message = f"The model `{model}` does not exist or you do not have access to it."
    await expect(failed.locator(".chat-error-message")).to_contain_text(message)
    await expect(failed.locator(".chat-error-details")).to_have_text("HTTP 404 · model_not_found")
    await expect(chat.questions).to_have_text(["Before the deletion", "After the deletion"])


async def test_one_chat_talks_to_a_local_model_then_an_api_model(
    signed_in_page: Page,
    *,
    client: httpx.AsyncClient,
    register_upstream: RegisterUpstream,
    fake_upstream: FakeUpstream,
    local_workers: LocalWorkers,
    tiny_models: tuple[Path, Path],
) -> None:
    alias = await add_alias(client, tiny_models[0])
    local_workers.start(alias)
    assert (await served_by(client, alias)).status_code == 200
    api_model = await register_upstream(Script(chunks=2, text="remote"))
    page = signed_in_page
    chat = await ChatPage(page).open(model=alias)
    local_group = page.get_by_role("listbox", name="Models").get_by_role("group", name="Local models")
    await chat.model.click()
    await expect(local_group.get_by_role("option", name=alias, exact=True)).to_be_visible()
    await chat.model.press("Escape")

    local = await chat.ask("Hello local")
    await expect(local.locator(".chat-message-author")).to_have_text(alias)
    await expect(local.locator(".chat-error")).to_have_count(0)
    await expect(local.locator(".chat-usage")).to_contain_text("Tokens:")

    await chat.choose_model(api_model)
    remote = await chat.ask("Hello remote")
    await expect(remote.locator(".chat-message-author")).to_have_text(api_model)
    await expect(chat.body(remote)).to_have_text("remote0 remote1")
    await expect(chat.answers).to_have_count(2)
    sent = (await recorded(fake_upstream, api_model)).body["messages"]
    assert sent[0] == {"role": "user", "content": "Hello local"}  # the local model's turn is in the history
    assert sent[-1] == {"role": "user", "content": "Hello remote"}
    await expect(chat.saved.first).to_contain_text(api_model)  # the chat remembers its latest model
