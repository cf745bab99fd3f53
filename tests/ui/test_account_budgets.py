"""Budgets, limits and prices in a real browser: a token's budget and what it spent this period (tokens and
dollars) on the tokens page, a user's limits edited on the users page, prices set and deleted on the usage page
with the usage's cost beside it."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.conftest import Gateway, RegisterUpstream
from tests.ui.conftest import MakeUser, check_accessibility, log_in, screenshot

INPUT_PRICE, OUTPUT_PRICE = 2.5, 10  # dollars per million tokens


async def chat_with_token(gateway: Gateway, token: str, model: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        answer = await http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={"model": model, "messages": [{"role": "user", "content": "hello"}]},
        )
        assert answer.status_code == 200, answer.text


async def listed_token(page: Page, name: str, *, within: float = 10.0) -> dict[str, Any]:
    """The API's entry of the token ``name`` once its budget shows some spending (usage is written in batches)."""
    deadline = time.monotonic() + within
    while True:
        tokens = (await (await page.request.get("/bodhi/v1/tokens")).json())["data"]
        (entry,) = [t for t in tokens if t["name"] == name]
        if (entry["budget_spent"] or {}).get("tokens") or time.monotonic() > deadline:
            return dict(entry)
        await asyncio.sleep(0.2)


async def set_price(page: Page, model: str) -> None:
    answer = await page.request.put(
        f"/bodhi/v1/prices/{model}", data={"input_per_million": INPUT_PRICE, "output_per_million": OUTPUT_PRICE}
    )
    assert answer.status == 200, await answer.text()


async def test_a_tokens_budget_shows_what_it_spent_this_period_in_tokens_and_dollars(
    signed_in_page: Page, gateway: Gateway, register_upstream: RegisterUpstream
) -> None:
    page = signed_in_page
    model = await register_upstream()
    await page.goto("/ui/tokens/")
    await page.get_by_label("Name").fill("budgeted")
    await page.get_by_label("Budget in tokens").fill("1000")
    await page.get_by_label("Per", exact=True).select_option("day")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_role("heading", name="Your new token")).to_be_focused()
    token = await page.get_by_label("Token budgeted").input_value()
    row = page.locator("#tokens-table tbody tr", has_text="budgeted")
    await expect(row.locator("td").nth(6)).to_contain_text("0 of 1,000 tokens today")

    await set_price(page, model)
    await chat_with_token(gateway, token, model)
    entry = await listed_token(page, "budgeted")
    spent = entry["budget_spent"]
    assert (entry["budget_tokens"], entry["budget_period"], spent["period"]) == (1000, "day", "day")
    assert spent["tokens"] > 0
    assert spent["cost"] > 0

    await page.reload()
    cell = page.locator("#tokens-table tbody tr", has_text="budgeted").locator("td").nth(6)
    await expect(cell).to_contain_text(f"{spent['tokens']} of 1,000 tokens today")
    await expect(cell).to_contain_text("Cost: $0.0")  # a fraction of a cent, shown to two significant digits
    meter = cell.locator("meter")
    await expect(meter).to_have_attribute("value", str(spent["tokens"]))
    await expect(meter).to_have_attribute("max", "1000")
    await expect(meter).to_have_accessible_name(f"Budget of budgeted: {round(100 * spent['tokens'] / 1000)}% spent")
    await check_accessibility(page)
    await screenshot(page, "tokens-budget")

    await page.set_viewport_size({"width": 375, "height": 740})
    await page.reload()
    await expect(page.locator("#tokens-table tbody tr", has_text="budgeted")).to_be_visible()
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, "tokens-budget-phone")


async def test_a_manager_edits_a_users_limits_and_sees_their_budget(signed_in_page: Page, make_user: MakeUser) -> None:
    page = signed_in_page
    target = await make_user("user")
    await page.goto("/ui/users/")
    row = page.locator("#users-table tbody tr", has_text=target.username)
    await expect(row.locator("td").nth(2)).to_contain_text("None")
    await row.get_by_text("Edit limits").click()
    await row.get_by_label("Requests per minute").fill("30")
    await row.get_by_label("Budget in tokens").fill("50000")
    await row.get_by_label("Budget period").select_option("day")
    await row.get_by_role("button", name=f"Save limits of {target.username}").click()
    await expect(page.locator("#users-status")).to_have_text(f"Saved the limits of {target.username}.")

    users = (await (await page.request.get("/bodhi/v1/users")).json())["data"]
    (entry,) = [u for u in users if u["username"] == target.username]
    assert (entry["rpm_limit"], entry["tpm_limit"], entry["budget_tokens"], entry["budget_period"]) == (
        30,
        None,
        50000,
        "day",
    )
    assert entry["budget_spent"]["tokens"] == 0
    row = page.locator("#users-table tbody tr", has_text=target.username)
    await expect(row.locator("td").nth(2)).to_contain_text("30 requests/min")
    await expect(row.locator("td").nth(2)).to_contain_text("0 of 50,000 tokens today")
    await row.get_by_text("Edit limits").click()
    await expect(row.get_by_label("Budget in tokens")).to_have_value("50000")
    await check_accessibility(page)
    await screenshot(page, "users-limits")

    # A budget without its period is the API's to refuse; cleared fields lift every limit.
    await row.get_by_label("Requests per minute").fill("0")
    await row.get_by_role("button", name=f"Save limits of {target.username}").click()
    await expect(page.locator("#users-alert")).to_contain_text("rpm_limit")
    await expect(page.locator("#users-status")).to_have_text("")  # the first save's message is not this one's
    await row.get_by_label("Requests per minute").fill("")
    await row.get_by_label("Budget in tokens").fill("")
    await row.get_by_role("button", name=f"Save limits of {target.username}").click()
    await expect(page.locator("#users-status")).to_have_text(f"Saved the limits of {target.username}.")
    users = (await (await page.request.get("/bodhi/v1/users")).json())["data"]
    (entry,) = [u for u in users if u["username"] == target.username]
    assert (entry["rpm_limit"], entry["budget_tokens"], entry["budget_spent"]) == (None, None, None)

    await page.set_viewport_size({"width": 375, "height": 740})
    await page.reload()
    await page.locator("#users-table tbody tr", has_text=target.username).get_by_text("Edit limits").click()
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, "users-limits-phone")


async def test_a_manager_prices_a_model_and_the_usage_shows_its_cost(
    signed_in_page: Page, register_upstream: RegisterUpstream
) -> None:
    page = signed_in_page
    model = await register_upstream()
    await page.goto("/ui/usage/")
    status = await page.evaluate(
        """async (model) => (await fetch("/v1/chat/completions", {method: "POST",
             headers: {"Content-Type": "application/json"},
             body: JSON.stringify({model, messages: [{role: "user", content: "hello"}]})})).status""",
        model,
    )
    assert status == 200
    await page.reload()
    row = page.locator("#usage-table tbody tr", has_text=model)
    await expect(row.locator("td").nth(4)).to_contain_text("tokens unpriced")

    await page.get_by_label("Model", exact=True).fill(model)
    await page.get_by_label("Input, per million tokens").fill(str(INPUT_PRICE))
    await page.get_by_label("Output, per million tokens").fill(str(OUTPUT_PRICE))
    await page.get_by_role("button", name="Save price").click()
    await expect(page.locator("#prices-status")).to_have_text(f"Saved the price of {model}.")
    price_row = page.locator("#prices-table tbody tr", has_text=model)
    await expect(price_row.locator("td").nth(0)).to_have_text("$2.50")
    await expect(price_row.locator("td").nth(1)).to_have_text("$10.00")

    usage = (await (await page.request.get("/bodhi/v1/usage?group_by=model")).json())["data"]
    (mine,) = [r for r in usage if r["key"] == model]
    assert mine["cost"] == (mine["prompt_tokens"] * INPUT_PRICE + mine["completion_tokens"] * OUTPUT_PRICE) / 1e6
    await page.get_by_role("button", name="Show usage").click()
    await expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^\$0\.0[0-9]*$"))  # a fraction of a cent
    shown = float((await row.locator("td").nth(4).inner_text()).removeprefix("$"))
    assert shown == pytest.approx(mine["cost"], rel=0.05)  # two significant digits
    await page.get_by_label("Group by").select_option("token")
    await expect(page.locator("#usage-table thead th").first).to_have_text("Token")
    await expect(page.locator("#usage-table tbody tr", has_text="(signed-in sessions)")).to_be_visible()
    await check_accessibility(page)
    await screenshot(page, "usage-prices")

    await page.get_by_label("Model", exact=True).fill("no-such-model")
    await page.get_by_label("Input, per million tokens").fill("1")
    await page.get_by_label("Output, per million tokens").fill("1")
    await page.get_by_role("button", name="Save price").click()
    await expect(page.locator("#price-model-error")).to_contain_text("No model `no-such-model` is served")
    await page.get_by_label("Model", exact=True).fill(model)
    await page.get_by_label("Input, per million tokens").fill("-1")
    await page.get_by_role("button", name="Save price").click()
    await expect(page.locator("#price-input-error")).to_contain_text("greater than or equal to 0")

    await price_row.get_by_role("button", name=f"Delete the price of {model}").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete price").click()
    await expect(page.locator("#prices-status")).to_have_text(f"Deleted the price of {model}.")
    await expect(page.locator("#prices-table tbody tr", has_text=model)).to_have_count(0)


async def test_a_user_sees_the_prices_without_the_form(page: Page, make_user: MakeUser) -> None:
    await log_in(page, await make_user("user"))
    await page.goto("/ui/usage/")
    await expect(page.get_by_role("heading", name="Prices")).to_be_visible()
    await expect(page.locator("#price-form")).to_have_count(0)
    await expect(page.locator("#prices-status")).not_to_have_text("Loading the prices…")
    await check_accessibility(page)
