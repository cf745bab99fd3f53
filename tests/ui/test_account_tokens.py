"""The tokens page (`/ui/tokens/`) in a real browser: create (shown once, copied; expiring, limited to some models),
deactivate, activate, delete; expiry, last use, models and rate limits in the table."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
from playwright.async_api import Page, expect

from tests.conftest import Gateway
from tests.ui.conftest import check_accessibility, screenshot


async def models_status(gateway: Gateway, token: str, *, expected: int, within: float = 5.0) -> int:
    """GET /v1/models with ``token`` until it answers ``expected`` (a change reaches every replica promptly, not
    within the same instant); return the last status."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        while True:
            status = (await http.get("/v1/models", headers={"Authorization": f"Bearer {token}"})).status_code
            if status == expected or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.1)


async def create_token(page: Page, name: str) -> str:
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Scope").select_option("user")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_role("heading", name="Your new token")).to_be_focused()
    return await page.get_by_label(f"Token {name}").input_value()


async def test_a_token_is_shown_once_copied_works_and_stops_working_when_deactivated(
    signed_in_page: Page, gateway: Gateway
) -> None:
    page = signed_in_page
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway.base_url)
    await page.goto("/ui/tokens/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Tokens")
    await expect(page.locator("#tokens-status")).to_have_text("You have no tokens yet.")
    await expect(page.get_by_label("Scope").locator("option")).to_have_text(["User", "Power user"])  # a manager's

    token = await create_token(page, "laptop scripts")
    assert token
    await page.get_by_role("button", name="Copy token").click()
    await expect(page.locator("#copy-token")).to_have_text("Copied")
    await expect(page.locator("#copy-status")).to_have_text("Copied the token to the clipboard.")
    assert await page.evaluate("() => navigator.clipboard.readText()") == token
    row = page.locator("#tokens-table tbody tr", has_text="laptop scripts")
    await expect(row.locator("td").nth(0)).to_have_text("User")
    await expect(row.locator("td").nth(1)).to_have_text("Active")
    await expect(row.locator("td").nth(3)).to_have_text("Never")
    await check_accessibility(page)
    await screenshot(page, "tokens")

    assert await models_status(gateway, token, expected=200) == 200
    await page.reload()
    await expect(page.locator("#new-token")).to_be_hidden()  # shown once: the list never holds the token
    assert token not in await page.content()
    row = page.locator("#tokens-table tbody tr", has_text="laptop scripts")
    await expect(row.locator("td").nth(3)).not_to_have_text("Never")  # it was just used

    await row.get_by_role("button", name="Deactivate laptop scripts").click()
    await expect(row.locator("td").nth(1)).to_have_text("Inactive")
    await expect(page.locator("#tokens-status")).to_have_text("laptop scripts is inactive: it no longer works.")
    assert await models_status(gateway, token, expected=401) == 401
    await row.get_by_role("button", name="Activate laptop scripts").click()
    await expect(row.locator("td").nth(1)).to_have_text("Active")
    assert await models_status(gateway, token, expected=200) == 200

    await row.get_by_role("button", name="Delete laptop scripts").click()
    dialog = page.get_by_role("dialog", name="Delete the token laptop scripts?")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await check_accessibility(page)
    await screenshot(page, "tokens-delete-dialog")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    await expect(row).to_have_count(1)  # cancelled: still there

    await row.get_by_role("button", name="Delete laptop scripts").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete token").click()
    await expect(page.locator("#tokens-status")).to_have_text("Deleted laptop scripts.")
    await expect(page.locator("#tokens-table tbody tr")).to_have_count(0)
    assert await models_status(gateway, token, expected=401) == 401


async def test_the_api_error_for_a_token_is_shown_next_to_its_field(signed_in_page: Page) -> None:
    page = signed_in_page
    await page.goto("/ui/tokens/")
    await page.get_by_role("button", name="Create token").click()  # no name: the API names `name`
    await expect(page.locator("#token-error-summary")).to_be_focused()
    await expect(page.locator("#token-name-error")).to_contain_text("name")
    await expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")


async def test_the_tokens_page_fits_a_phone(signed_in_page: Page) -> None:
    page = signed_in_page
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/ui/tokens/")
    await create_token(page, "phone")
    await expect(page.locator("#tokens-table tbody tr")).to_have_count(1)
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await check_accessibility(page)
    await screenshot(page, "tokens-phone")


async def test_a_token_with_an_expiry_and_models_shows_them_and_stops_when_it_expires(
    signed_in_page: Page, gateway: Gateway
) -> None:
    page = signed_in_page
    await page.goto("/ui/tokens/")
    await page.get_by_label("Name").fill("ci pipeline")
    await page.get_by_label("Expires").select_option(label="In 30 days")
    await page.get_by_label("Models").fill("openai/*, local-model")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_role("heading", name="Your new token")).to_be_focused()
    token = await page.get_by_label("Token ci pipeline").input_value()
    row = page.locator("#tokens-table tbody tr", has_text="ci pipeline")
    await expect(row.locator("td").nth(4)).not_to_have_text("Never")  # expires: a date 30 days on
    await expect(row.locator("td").nth(5).locator("code")).to_have_text(["openai/*", "local-model"])

    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        auth = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/v1/models", headers=auth)).status_code == 200
        refused = await http.get("/v1/models/some-other-model", headers=auth)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "model_not_allowed")
        await page.reload()
        await expect(row.locator("td").nth(3)).not_to_have_text("Never")  # last used: just now
        await check_accessibility(page)
        await screenshot(page, "tokens-limits")

        # Past its expiry (set in the database: no test waits for a day) it is shown expired and refused.
        token_id = await row.get_attribute("data-token-id")
        assert token_id is not None
        db = await asyncpg.connect(gateway.env["BODHI_DATABASE_URL"])
        try:
            await db.execute(
                "UPDATE api_tokens SET expires_at = now() - interval '1 hour' WHERE id = $1", uuid.UUID(token_id)
            )
        finally:
            await db.close()
        await page.reload()
        await expect(row.locator("td").nth(1)).to_have_text("Expired")
        deadline = time.monotonic() + 5  # a cached verification lives half a second
        while (expired := await http.get("/v1/models", headers=auth)).status_code != 401:
            assert time.monotonic() < deadline, expired.text
            await asyncio.sleep(0.1)
        assert expired.json()["error"]["code"] == "token_expired"
        await screenshot(page, "tokens-expired")


async def test_an_invalid_models_list_is_shown_next_to_its_field(signed_in_page: Page) -> None:
    page = signed_in_page
    await page.goto("/ui/tokens/")
    await page.get_by_label("Name").fill("bad models")
    await page.get_by_label("Models").fill("x" * 600)
    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator("#token-error-summary")).to_be_focused()
    await expect(page.get_by_label("Models")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#token-models-error")).not_to_be_empty()


async def test_a_token_with_rate_limits_shows_them_and_the_api_has_them(signed_in_page: Page, gateway: Gateway) -> None:
    page = signed_in_page
    await page.goto("/ui/tokens/")
    await page.get_by_label("Name").fill("rate limited")
    await page.get_by_label("Requests per minute").fill("30")
    await page.get_by_label("Tokens per minute").fill("5000")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_role("heading", name="Your new token")).to_be_focused()
    row = page.locator("#tokens-table tbody tr", has_text="rate limited")
    await expect(row.locator("td").nth(6)).to_have_text("30 requests/min, 5000 tokens/min")
    token_id = await row.get_attribute("data-token-id")
    listed = await page.request.get("/bodhi/v1/tokens")
    (entry,) = [t for t in (await listed.json())["data"] if t["id"] == token_id]
    assert (entry["rpm_limit"], entry["tpm_limit"], entry["budget_tokens"]) == (30, 5000, None)
