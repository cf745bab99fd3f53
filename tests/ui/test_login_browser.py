"""Logging in and out in a real browser, the header every page shows, and the login page's checks."""

from __future__ import annotations

from playwright.async_api import Page, expect

from bodhi_api.ui.security_headers import CONTENT_SECURITY_POLICY
from tests.ui.conftest import MakeUser, check_accessibility, log_in, screenshot


async def test_the_root_leads_to_the_login_page(page: Page) -> None:
    response = await page.goto("/")
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.url.endswith("/ui/login/?next=/ui/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Log in to Bodhi")
    await expect(page.get_by_label("Username")).to_be_visible()
    await expect(page.get_by_label("Password")).to_be_visible()


async def test_the_login_page_is_accessible(page: Page) -> None:
    await page.goto("/ui/login/")
    await check_accessibility(page)
    await screenshot(page, "login")


async def test_logging_in_shows_the_header_with_name_and_role(page: Page, make_user: MakeUser) -> None:
    user = await make_user("power_user")
    await log_in(page, user)
    assert page.url.endswith("/ui/models/")  # `/ui/` is the models page
    header = page.locator(".site-header")
    await expect(header.locator("#account-name")).to_have_text(user.username)
    await expect(header.locator("#account-role")).to_have_text("Power user")
    await expect(header.get_by_role("button", name="Log out")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Models", "Chat", "Tokens", "Usage", "API docs"):
        await expect(nav.get_by_role("link", name=label)).to_be_visible()
    await expect(nav.get_by_role("link", name="Users")).to_have_count(0)  # managers and admins only


async def test_logging_out_ends_the_session(signed_in_page: Page) -> None:
    page = signed_in_page
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url("**/ui/login/")
    await page.goto("/ui/")
    assert "/ui/login/" in page.url  # the cookie is gone and the session ended
    status = await page.evaluate("async () => (await fetch('/bodhi/v1/user')).status")
    assert status == 401


async def test_a_wrong_password_shows_the_error_above_the_form(page: Page, make_user: MakeUser) -> None:
    user = await make_user()
    await page.goto("/ui/login/")
    await page.get_by_label("Username").fill(user.username)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Log in").click()
    summary = page.locator("#error-summary")
    await expect(summary).to_be_visible()
    await expect(summary).to_be_focused()  # so that a screen reader reads it at once
    await expect(summary.get_by_role("alert")).to_contain_text("Wrong username or password.")
    assert "/ui/login/" in page.url
    await check_accessibility(page)
    await screenshot(page, "login-error")


async def test_the_api_message_for_a_field_is_shown_next_to_it(page: Page) -> None:
    await page.goto("/ui/login/")
    await page.get_by_label("Password").fill("something")
    await page.get_by_role("button", name="Log in").click()  # no username: the API names `username`
    await expect(page.locator("#username-error")).to_be_visible()
    await expect(page.get_by_label("Username")).to_have_attribute("aria-invalid", "true")
    link = page.locator("#error-summary a[href='#username']")
    await expect(link).to_have_text(await page.locator("#username-error").inner_text())
    await link.click()
    await expect(page.get_by_label("Username")).to_be_focused()


async def test_logging_in_works_from_the_keyboard(page: Page, make_user: MakeUser) -> None:
    user = await make_user()
    await page.goto("/ui/login/?next=/docs")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    await page.get_by_label("Username").focus()
    await page.keyboard.type(user.username)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Password")).to_be_focused()
    await page.keyboard.type(user.password)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/docs")  # where the visitor was going
    await expect(page.locator("#account-name")).to_have_text(user.username)
