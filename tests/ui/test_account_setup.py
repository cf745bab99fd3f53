"""The first-run setup wizard (`/ui/setup/`) in a real browser, on a gateway whose database has no user yet."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import Page, expect

from tests.conftest import TEST_API_KEY
from tests.support.fake_upstream import FakeUpstream, Script
from tests.ui.conftest import FreshGateway, check_accessibility, screenshot

ADMIN_PASSWORD = "wizard-pa55word"


async def create_the_admin(page: Page, username: str) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    await page.get_by_label("Confirm password").fill("not the same")
    await page.get_by_role("button", name="Create admin account").click()
    await expect(page.locator("#admin-confirm-error")).to_have_text(
        "The two passwords differ: type the same password twice."
    )
    await expect(page.locator("#admin-error-summary")).to_be_focused()
    await page.get_by_label("Confirm password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Create admin account").click()


async def configure_the_api_model(page: Page, fake_upstream: FakeUpstream, model: str) -> None:
    step = page.locator("#step-api-model")
    await step.get_by_role("button", name="OpenRouter").click()
    await expect(step.get_by_role("textbox", name="Base URL")).to_have_value("https://openrouter.ai/api/v1")
    await step.get_by_role("textbox", name="Base URL").fill(fake_upstream.base_url)
    await step.get_by_label("API key").fill("sk-not-the-key")
    await step.get_by_role("button", name="Test Connection").click()  # nothing chosen yet: says what to do
    await expect(page.locator("#models-error")).to_have_text("Select a model to test the connection with.")
    fake_upstream.models_required_key = TEST_API_KEY
    try:
        await step.get_by_role("button", name="Fetch Models").click()  # the provider refuses the key
        await expect(page.locator("#api-model-error-summary")).to_be_focused()
        await expect(page.locator("#api-key-error")).to_contain_text("Invalid API key")
        assert "sk-not-the-key" not in await page.locator("#api-model-error-summary").inner_text()
        await check_accessibility(page)
        await screenshot(page, "setup-api-model-error")
        await step.get_by_label("API key").fill(TEST_API_KEY)
        await step.get_by_role("button", name="Fetch Models").click()
        await expect(page.locator("#api-model-error-summary")).to_be_hidden()
    finally:
        fake_upstream.reset_model_list()
    await expect(step.get_by_label(model, exact=True)).to_be_visible()
    await step.get_by_label(model, exact=True).check()
    await expect(page.locator("#models-status")).to_contain_text("1 selected")
    await step.get_by_role("button", name="Test Connection").click()
    await expect(page.locator("#connection-result")).to_have_text(f"Connection works: {model} answered.")


async def test_the_wizard_creates_the_admin_and_an_api_model_and_skips_the_local_model(
    fresh_page: Page, fresh_gateway: FreshGateway, fake_upstream: FakeUpstream
) -> None:
    page = fresh_page
    model = f"wizard-{uuid.uuid4().hex[:8]}"
    fake_upstream.scripts[model] = Script()
    fake_upstream.scripts[f"{model}-other"] = Script()
    username = f"first-admin-{uuid.uuid4().hex[:6]}"

    await page.goto("/ui/login/")  # the login page points to the wizard while nobody can log in
    await page.get_by_role("link", name="Set up Bodhi").click()
    await page.wait_for_url("**/ui/setup/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Set up Bodhi")
    await expect(page.locator("#setup-steps li[aria-current=step]")).to_have_text("Admin account")
    await check_accessibility(page)
    await screenshot(page, "setup-admin")

    await create_the_admin(page, username)
    await expect(page.get_by_role("heading", name="Configure API Model")).to_be_focused()
    await expect(page.locator("#setup-steps li[aria-current=step]")).to_contain_text("API model")
    await check_accessibility(page)
    await screenshot(page, "setup-api-model")

    await configure_the_api_model(page, fake_upstream, model)
    await check_accessibility(page)
    await screenshot(page, "setup-api-model-tested")
    await page.get_by_role("button", name="Save API model").click()

    await expect(page.get_by_role("heading", name="Add a local model")).to_be_focused()
    await check_accessibility(page)
    await screenshot(page, "setup-local-model")
    await page.locator("#step-local-model").get_by_role("button", name="Skip this step").click()

    await expect(page.get_by_role("heading", name="Bodhi is ready")).to_be_focused()
    steps = page.locator("#setup-steps")
    await expect(steps.locator("li[data-step=api-model]")).to_contain_text(", done")
    await expect(steps.locator("li[data-step=local-model]")).to_contain_text(", skipped")
    summary = page.locator("#setup-summary")
    await expect(summary).to_contain_text(f"The admin account {username}.")
    await expect(summary).to_contain_text(f"serving {model}.")
    await expect(page.get_by_role("link", name="Go to the models page")).to_have_attribute("href", "/ui/models/")
    await check_accessibility(page)
    await screenshot(page, "setup-done")

    # Logged in as that admin (the wizard's session), the API model is there, as any client sees it.
    me = await (await page.request.get("/bodhi/v1/user")).json()
    assert (me["username"], me["role"]) == (username, "admin")
    listed = (await (await page.request.get("/bodhi/v1/models/api")).json())["data"]
    assert [(m["base_url"], m["models"], m["has_api_key"]) for m in listed] == [(fake_upstream.base_url, [model], True)]


async def test_after_setup_the_wizard_leads_to_the_login_page(fresh_gateway: FreshGateway) -> None:
    async with httpx.AsyncClient(base_url=fresh_gateway.base_url, timeout=20) as http:
        before = await http.get("/ui/setup/")
        assert before.status_code == 200
        assert "Create the admin account" in before.text
        created = await http.post("/bodhi/v1/setup", json={"username": "the-admin", "password": ADMIN_PASSWORD})
        assert created.status_code == 201, created.text
        after = await http.get("/ui/setup/")
        assert after.status_code == 303
        assert after.headers["location"] == "/ui/login/"
