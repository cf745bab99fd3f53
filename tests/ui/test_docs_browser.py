"""The API reference at /docs: /openapi.json rendered by the page's own script, with local assets only."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.ui.conftest import check_accessibility, screenshot


async def test_the_reference_lists_every_operation_by_section(page: Page) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await page.goto("/docs")
    operations = page.locator(".op")
    await expect(operations.first).to_be_visible()
    spec = await page.evaluate("async () => (await fetch('/openapi.json')).json()")
    expected = sum(len(item) for item in spec["paths"].values())
    await expect(operations).to_have_count(expected)
    await expect(page.locator("#docs-status")).to_have_text(f"{expected} operations.")
    await expect(page.get_by_role("navigation", name="Sections").get_by_role("link", name="API models")).to_be_visible()
    chat = page.locator("#op-post-v1-chat-completions")
    await expect(chat.locator(".method")).to_have_text("POST")
    await expect(chat.locator(".op-path")).to_have_text("/v1/chat/completions")
    origin = page.url.split("/docs")[0]
    assert all(url.startswith(origin) for url in requests), "no asset may come from elsewhere"


async def test_an_operation_opens_to_its_request_body_and_answers(page: Page) -> None:
    await page.goto("/docs#op-post-bodhi-v1-models-api")
    create = page.locator("#op-post-bodhi-v1-models-api")
    await expect(create).to_have_attribute("open", "")  # the link's operation is opened
    body = create.locator(".op-body")
    await expect(body.get_by_text("ApiModelCreate", exact=True)).to_be_visible()
    base_url = body.locator(".schema-fields li").filter(has=page.locator("code", has_text="base_url")).first
    await expect(base_url.locator(".badge-required")).to_have_text("required")
    await expect(body.get_by_text("ApiModelPublic", exact=True)).to_be_visible()  # the 201 answer, expanded
    await expect(body.get_by_text("HTTPValidationError")).to_have_count(0)  # FastAPI's 422, not Bodhi's errors
    await check_accessibility(page)
    await screenshot(page, "docs")


async def test_the_filter_narrows_the_operations(page: Page) -> None:
    await page.goto("/docs")
    await expect(page.locator(".op").first).to_be_visible()
    await page.get_by_label("Filter operations").fill("embeddings")
    await expect(page.locator(".op:visible")).to_have_count(1)
    await expect(page.locator("#docs-status")).to_contain_text("1 of")
    await page.get_by_label("Filter operations").fill("")
    assert await page.locator(".op:visible").count() > 1


async def test_an_operation_opens_from_the_keyboard(page: Page) -> None:
    await page.goto("/docs")
    summary = page.locator("#op-get-v1-models > summary")
    await summary.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#op-get-v1-models")).to_have_attribute("open", "")


async def test_anonymous_visitors_are_offered_to_log_in(page: Page) -> None:
    await page.goto("/docs")
    await expect(page.locator(".site-header").get_by_role("link", name="Log in")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_count(1)  # API docs only
