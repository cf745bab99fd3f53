"""The browser harness itself catches what it is there for: script the policy refuses, an inaccessible page."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.ui.conftest import check_accessibility, watch


async def test_inline_script_is_refused_by_the_policy(page: Page) -> None:
    await page.goto("/ui/login/")
    async with page.expect_console_message(lambda message: "Content Security Policy" in message.text):
        ran = await page.evaluate(
            """() => {
                window.injected = false;
                const script = document.createElement('script');
                script.textContent = 'window.injected = true';
                document.body.append(script);
                return window.injected;
            }"""
        )
    assert ran is False
    assert watch(page).csp_violations  # the browser reported the refusal
    watch(page).csp_violations.clear()  # provoked on purpose


async def test_the_accessibility_check_fails_on_an_unlabelled_control(page: Page) -> None:
    await page.goto("/ui/login/")
    await page.evaluate("() => document.querySelector('main').append(document.createElement('input'))")
    with pytest.raises(AssertionError, match=r"label \(critical\)"):
        await check_accessibility(page)
