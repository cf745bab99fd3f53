"""The README's tour: the main pages on a gateway of their own, with a little data, photographed light and dark.

It checks what the pictures show, so a tour picture of a broken page fails here. `deploy/update-tour.sh` copies
the pictures (`tour-*.png` under BODHI_SCREENSHOT_DIR) into docs/tour/.
"""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from tests.conftest import TEST_API_KEY
from tests.support.fake_upstream import FakeUpstream, Script
from tests.ui.conftest import FreshGateway, check_accessibility, screenshot

ADMIN = "ada"
PASSWORD = "tour-pa55word-planted"
ANSWER = [
    "Here is a small function:\n\n",
    "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n\n",
    "It returns the **sum** of its two arguments.",
]


async def test_the_tour(fresh_gateway: FreshGateway, fresh_page: Page, fake_upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient(base_url=fresh_gateway.base_url, timeout=20) as http:
        assert (await http.post("/bodhi/v1/setup", json={"username": ADMIN, "password": PASSWORD})).status_code == 201
        assert (await http.post("/bodhi/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})).is_success
        for name, prefix, models in (
            ("OpenAI", "openai/", ["gpt-4o", "gpt-4o-mini", "o3", "o4-mini"]),
            ("OpenRouter", "openrouter/", ["anthropic/claude-sonnet-4.5", "mistralai/mistral-large"]),
        ):
            for model in models:
                fake_upstream.scripts[model] = Script(chunks=len(ANSWER), pieces=ANSWER, delay=0.05)
            body = {"name": name, "base_url": fake_upstream.base_url, "api_key": TEST_API_KEY}
            created = await http.post("/bodhi/v1/models/api", json=body | {"prefix": prefix, "models": models})
            assert created.status_code == 201, created.text

    page = fresh_page
    await page.goto("/ui/login/")
    await page.get_by_label("Username").fill(ADMIN)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{fresh_gateway.base_url}/ui/models/")
    await expect(page.get_by_role("link", name="openai/gpt-4o", exact=True)).to_be_visible()
    await screenshot(page, "tour-models")

    await page.get_by_role("link", name="openai/gpt-4o", exact=True).click()
    await page.get_by_label("Message").fill("Write an add function in Python")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("pre code").first).to_contain_text("return a + b")
    await expect(page.get_by_text("Tokens:")).to_be_visible()
    await check_accessibility(page)
    await screenshot(page, "tour-chat")

    await page.goto("/ui/models/")
    await page.get_by_role("link", name="Edit OpenAI", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Edit API model")
    await screenshot(page, "tour-api-model")

    await page.goto("/ui/usage/")
    await expect(page.get_by_role("table").get_by_text("openai/gpt-4o", exact=True)).to_be_visible(timeout=15_000)
    await screenshot(page, "tour-usage")
