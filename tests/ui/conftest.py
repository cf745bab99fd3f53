"""Browser tests of the web UI: Playwright driving the system's Chromium (Debian's package), headless.

No browser is downloaded: Chromium is launched by path. Without it the browser tests skip, naming the install
command, except under CI (``CI=true``), where a missing browser fails them. Every page a test opens is watched for
Content-Security-Policy violations and uncaught script errors, which fail the test. ``screenshot`` writes light
and dark PNGs under ``BODHI_SCREENSHOT_DIR`` (default ``.bodhi-test/screenshots``, which CI keeps);
``check_accessibility`` runs the vendored axe-core in the page, in light and dark, and fails on serious or critical
violations.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

from tests.conftest import ADMIN_PASSWORD, Gateway
from tests.support.backing import create_database, drop_database, new_name
from tests.support.fake_upstream import free_port
from tests.support.processes import BodhiProcess, wait_for_workers, wait_until_serving

CHROMIUM = Path(os.environ.get("BODHI_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root in a container, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",  # no calls home: the tests must pass without a network
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = "apt-get install -y chromium"
REPO_ROOT = Path(__file__).resolve().parents[2]
AXE_URL = "/ui/static/vendor/axe-core/axe.min.js"
Scheme = Literal["light", "dark"]
SCHEMES: tuple[Scheme, ...] = ("light", "dark")
PASSWORD = "ui-test-pa55word"  # a test user's


def screenshot_dir() -> Path:
    configured = Path(os.environ.get("BODHI_SCREENSHOT_DIR", ".bodhi-test/screenshots"))
    folder = configured if configured.is_absolute() else REPO_ROOT / configured
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system's Chromium; skip (fail under CI) without it."""
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}: {INSTALL_HINT} (or set BODHI_TEST_CHROMIUM to its path)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the browser tests: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        yield launched
        await launched.close()


@dataclass
class PageWatch:
    """What a page reported that no page should: CSP violations (console) and uncaught script errors."""

    csp_violations: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    def on_page_error(self, error: Error) -> None:
        self.script_errors.append(f"{error.name}: {error.message}")


_WATCHES: dict[int, PageWatch] = {}


def watch(page: Page) -> PageWatch:
    """The watch of a page from the ``page`` fixture (clear what a test provoked on purpose)."""
    return _WATCHES[id(page)]


@pytest.fixture
async def page(browser: Browser, gateway: Gateway) -> AsyncIterator[Page]:
    """A fresh browser context (no cookies) on the gateway, 1280x800, light; fails the test on CSP violations."""
    context = await browser.new_context(base_url=gateway.base_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    opened = await context.new_page()
    watched = _WATCHES[id(opened)] = PageWatch()
    opened.on("console", watched.on_console)
    opened.on("pageerror", watched.on_page_error)
    try:
        yield opened
    finally:
        del _WATCHES[id(opened)]
        await context.close()
    assert not watched.csp_violations, f"Content-Security-Policy violations: {watched.csp_violations}"
    assert not watched.script_errors, f"uncaught script errors: {watched.script_errors}"


@dataclass(frozen=True)
class UiUser:
    username: str
    password: str
    role: str


MakeUser = Callable[..., Awaitable[UiUser]]


@pytest.fixture
async def make_user(gateway: Gateway) -> AsyncIterator[MakeUser]:
    """Create users through the API, as the gateway's admin (a session: tokens cannot manage users)."""
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        login = await http.post(
            "/bodhi/v1/auth/login", json={"username": gateway.admin_username, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text

        async def make(role: str = "user") -> UiUser:
            name = f"ui-{role}-{uuid.uuid4().hex[:8]}"
            created = await http.post("/bodhi/v1/users", json={"username": name, "password": PASSWORD, "role": role})
            assert created.status_code == 201, created.text
            return UiUser(username=name, password=PASSWORD, role=role)

        yield make


async def log_in(page: Page, user: UiUser) -> None:
    """Log in through the login page's form, as a person would."""
    if "/ui/login/" not in page.url:
        await page.goto("/ui/login/")
    await page.get_by_label("Username").fill(user.username)
    await page.get_by_label("Password").fill(user.password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(lambda url: "/ui/login/" not in url)


@pytest.fixture
async def signed_in_page(page: Page, make_user: MakeUser) -> Page:
    """``page``, logged in through the form as a new user of role manager, on the home page."""
    await log_in(page, await make_user("manager"))
    return page


async def screenshot(page: Page, name: str) -> list[Path]:
    """Write ``{name}-light.png`` and ``{name}-dark.png`` of the whole page; return their paths."""
    written = []
    await page.evaluate("() => window.scrollTo(0, 0)")  # sticky parts stay at the top of a full-page picture
    for scheme in SCHEMES:
        await page.emulate_media(color_scheme=scheme)
        path = screenshot_dir() / f"{name}-{scheme}.png"
        await page.screenshot(path=path, full_page=True, animations="disabled")
        written.append(path)
    await page.emulate_media(color_scheme="light")
    return written


async def check_accessibility(page: Page) -> None:
    """Run axe-core (vendored, loaded from the gateway like any script) in light and dark; fail on serious or
    critical violations, listing each with the elements it found."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.add_script_tag(url=AXE_URL)
    found: list[str] = []
    for scheme in SCHEMES:
        await page.emulate_media(color_scheme=scheme)
        violations: list[dict[str, Any]] = await page.evaluate(
            "async () => (await window.axe.run(document, {resultTypes: ['violations']})).violations"
        )
        for violation in violations:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"]][:5]
                found.append(f"[{scheme}] {violation['id']} ({violation['impact']}): {violation['help']} {targets}")
    await page.emulate_media(color_scheme="light")
    assert not found, f"accessibility violations on {page.url}:\n" + "\n".join(found)


@dataclass(frozen=True)
class FreshGateway:
    base_url: str
    api: BodhiProcess


@pytest.fixture
async def fresh_gateway(
    gateway: Gateway, postgres_server_url: str, redis_url: str, scratch: Path
) -> AsyncIterator[FreshGateway]:
    """An API and a remote worker on a new, empty database (the API migrates it), in a Redis namespace of their
    own; the test run's worker keys, so that API-model keys sealed there open in the worker."""
    database = new_name("bodhi_test_wizard")
    database_url = await create_database(postgres_server_url, database)
    port, prefix = free_port(), new_name("bodhitest-wizard")
    env = gateway.env | {"BODHI_DATABASE_URL": database_url, "BODHI_REDIS_PREFIX": prefix, "BODHI_PORT": str(port)}
    api = BodhiProcess(["api"], env=env, log_path=scratch / f"{prefix}-api.log")
    worker = BodhiProcess(["remote-worker"], env=env, log_path=scratch / f"{prefix}-worker.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until_serving, base_url, api)
        await asyncio.to_thread(wait_for_workers, base_url)
        yield FreshGateway(base_url=base_url, api=api)
    finally:
        await asyncio.to_thread(api.stop)
        await asyncio.to_thread(worker.stop)
        await drop_database(postgres_server_url, database)
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest.fixture
async def fresh_page(browser: Browser, fresh_gateway: FreshGateway) -> AsyncIterator[Page]:
    """Like the ``page`` fixture, on the fresh gateway: fails on CSP violations and uncaught script errors."""
    context = await browser.new_context(base_url=fresh_gateway.base_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    opened = await context.new_page()
    watched = PageWatch()
    opened.on("console", watched.on_console)
    opened.on("pageerror", watched.on_page_error)
    try:
        yield opened
    finally:
        await context.close()
    assert not watched.csp_violations, f"Content-Security-Policy violations: {watched.csp_violations}"
    assert not watched.script_errors, f"uncaught script errors: {watched.script_errors}"
