"""The usage page (`/ui/usage/`) in a real browser: a chat's tokens per model, user and API model, table and chart."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from playwright.async_api import Page, expect

from tests.conftest import RegisterUpstream
from tests.ui.conftest import check_accessibility, screenshot

CHAT = """async (model) => {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({model, messages: [{role: "user", content: "hello"}]}),
  });
  return response.status;
}"""


async def usage_of(page: Page, model: str, *, within: float = 10.0) -> dict[str, Any]:
    """The API's usage row of ``model`` for the signed-in user, once it is recorded."""
    deadline = time.monotonic() + within
    while True:
        rows: list[dict[str, Any]] = (await (await page.request.get("/bodhi/v1/usage?group_by=model")).json())["data"]
        found = [row for row in rows if row["key"] == model]
        if found or time.monotonic() > deadline:
            assert found, f"no usage recorded for {model}: {rows}"
            return found[0]
        await asyncio.sleep(0.2)


async def chat_once(page: Page, register_upstream: RegisterUpstream) -> tuple[str, dict[str, Any]]:
    """A chat completion from the signed-in browser session (the page's cookie), on a fresh fake model."""
    model = await register_upstream()
    await page.goto("/ui/usage/")
    assert await page.evaluate(CHAT, model) == 200
    return model, await usage_of(page, model)


async def test_the_usage_page_shows_a_chats_tokens_in_the_table_and_the_chart(
    signed_in_page: Page, register_upstream: RegisterUpstream
) -> None:
    page = signed_in_page
    model, usage = await chat_once(page, register_upstream)
    total = usage["total_tokens"]
    assert total == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    await page.reload()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Usage")
    await expect(page.get_by_role("button", name="Last 7 days")).to_have_attribute("aria-pressed", "true")
    row = page.locator("#usage-table tbody tr", has_text=model)
    await expect(row.locator("th")).to_have_text(model)
    await expect(row.locator("td").nth(0)).to_have_text("1")  # requests
    await expect(row.locator("td").nth(3)).to_have_text(str(total))
    chart = page.locator("#usage-chart")
    await expect(chart.locator("canvas")).to_have_count(1)
    await expect(chart).to_have_attribute("role", "img")
    await expect(chart).to_have_attribute("aria-describedby", "usage-table")  # the table is its text alternative
    assert (await chart.bounding_box() or {"height": 0})["height"] > 100
    await check_accessibility(page)
    await screenshot(page, "usage")

    me = await page.locator("#account-name").inner_text()
    await page.get_by_label("Group by").select_option("user")
    await expect(page.locator("#usage-table thead th").first).to_have_text("User")
    await expect(page.locator("#usage-table tbody tr", has_text=me)).to_be_visible()

    await page.get_by_label("Group by").select_option("api_model")
    await expect(page.locator("#usage-table tbody tr", has_text=f"fake for {model}")).to_be_visible()
    await expect(chart.locator("canvas")).to_have_count(1)
    await check_accessibility(page)
    await screenshot(page, "usage-api-model")

    await page.get_by_label("Group by").select_option("target")  # the model that answered: here the one asked for
    await expect(page.locator("#usage-table thead th").first).to_have_text("Served model")
    await expect(page.locator("#usage-table tbody tr", has_text=model)).to_be_visible()


async def test_the_period_picks_and_the_date_inputs_choose_the_days(
    signed_in_page: Page, register_upstream: RegisterUpstream
) -> None:
    page = signed_in_page
    model, _ = await chat_once(page, register_upstream)
    await page.reload()
    await page.get_by_role("button", name="Today").click()
    await expect(page.get_by_role("button", name="Today")).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_role("button", name="Last 7 days")).to_have_attribute("aria-pressed", "false")
    today = await page.get_by_label("To", exact=True).input_value()
    assert await page.get_by_label("From", exact=True).input_value() == today
    await expect(page.locator("#usage-table tbody tr", has_text=model)).to_be_visible()

    await page.get_by_label("From", exact=True).fill("2001-01-01")
    await page.get_by_label("To", exact=True).fill("2001-01-31")
    await page.get_by_role("button", name="Show usage").click()
    await expect(page.locator("#usage-status")).to_contain_text("No usage from")
    await expect(page.locator("#usage-results")).to_be_hidden()

    await page.get_by_label("From", exact=True).fill("2001-02-01")
    await page.get_by_role("button", name="Show usage").click()
    await expect(page.locator("#usage-to-error")).to_have_text("The first day must not be after the last day.")


async def test_the_usage_page_fits_a_phone(signed_in_page: Page, register_upstream: RegisterUpstream) -> None:
    page = signed_in_page
    await page.set_viewport_size({"width": 375, "height": 740})
    await chat_once(page, register_upstream)
    await page.reload()
    await expect(page.locator("#usage-chart canvas")).to_have_count(1)
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    canvas_width = await page.evaluate(
        "() => document.querySelector('#usage-chart canvas').getBoundingClientRect().width"
    )
    assert canvas_width <= 375
    await check_accessibility(page)
    await screenshot(page, "usage-phone")
