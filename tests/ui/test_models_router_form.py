"""The router form in a browser (``/ui/models/router/...``) and routers in the models table: creating, reordering
targets, the API's errors by their fields, cool-downs, deleting, the role it needs, light, dark and phone."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page, expect

from bodhi_api.auth.roles import Role
from bodhi_shared.redis_keys import RedisKeys
from tests.conftest import TEST_API_KEY, Gateway
from tests.support.fake_upstream import FakeUpstream
from tests.ui.conftest import MakeUser, check_accessibility, log_in, screenshot
from tests.ui.test_pages import INLINE_SCRIPT, INLINE_STYLE
from tests.ui.test_templates import html, page_for_user, user

ROUTERS = "/bodhi/v1/routers"
NEW = "/ui/models/router/new/"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def serve_models(client: httpx.AsyncClient, upstream: FakeUpstream, count: int, stem: str = "target") -> Any:
    """An API model serving ``count`` fresh ids (the admin's token: API models need a power user)."""
    ids = [unique(f"{stem}{n}") for n in range(1, count + 1)]
    body = {"name": unique("ui-router"), "base_url": upstream.base_url, "api_key": TEST_API_KEY, "models": ids}
    created = await client.post("/bodhi/v1/models/api", json=body)
    assert created.status_code == 201, created.text
    return created.json()


async def saved_router(page: Page, model_id: str) -> Any:
    """The router as the API has it, read with the page's session (a manager's)."""
    response = await page.request.get(f"{ROUTERS}/{model_id}")
    assert response.status == 200, await response.text()
    return await response.json()


def table_row(page: Page, name: str) -> Any:
    return page.locator("#models-rows tr").filter(has=page.locator(".model-name", has_text=name))


def target_select(page: Page, n: int) -> Any:
    return page.get_by_label(f"Target {n}", exact=True)


async def test_a_router_is_made_reordered_and_deleted_through_the_form(
    signed_in_page: Page, client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    page = signed_in_page
    api_model = await serve_models(client, fake_upstream, 3)
    first, second, third = api_model["models"]
    router_id = unique("team/gpt")

    await page.goto("/ui/models/")
    await page.get_by_role("link", name="New router").click()
    await page.wait_for_url(f"**{NEW}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("New router")
    await expect(page.get_by_label("Cool-down in seconds")).to_have_value("30")
    await expect(page.get_by_label("Strategy")).to_have_value("fallback")
    await page.get_by_label("Model id").fill(router_id)
    await page.get_by_label("Strategy").select_option("round_robin")
    await target_select(page, 1).select_option(first)
    await page.get_by_role("button", name="Add target").click()
    await expect(target_select(page, 2)).to_be_focused()
    await target_select(page, 2).select_option(second)
    await page.get_by_role("button", name="Add target").click()
    await target_select(page, 3).select_option(third)
    await page.get_by_label("Cool-down in seconds").fill("45")
    await expect(page.get_by_role("button", name="Move up target 1")).to_be_disabled()
    await expect(page.get_by_role("button", name="Move down target 3")).to_be_disabled()

    # By keyboard: the focus follows the moved target.
    await page.get_by_role("button", name="Move up target 3").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Move up target 2")).to_be_focused()
    await expect(page.locator("#targets-announce")).to_have_text(f"Moved {third} to position 2 of 3.")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Move down target 1")).to_be_focused()  # the top: no Move up
    for n, expected in enumerate((third, first, second), start=1):
        await expect(target_select(page, n)).to_have_value(expected)
    await check_accessibility(page)
    await screenshot(page, "models-router-new")

    await page.get_by_role("button", name="Create router").click()
    await page.wait_for_url("**/ui/models/")
    listed = table_row(page, router_id)
    await expect(listed.locator(".badge-router")).to_have_text("⇄ Router")
    await expect(listed.locator("td[data-label='Strategy']")).to_have_text("Round robin")
    await expect(listed.locator(".router-targets li")).to_have_text([third, first, second])
    await expect(listed.get_by_role("link", name=router_id, exact=True)).to_have_attribute(
        "href", f"/ui/chat/?model={router_id.replace('/', '%2F')}"
    )
    await page.get_by_label("Filter models").fill(second)  # a router is found by its targets too
    await expect(listed).to_be_visible()
    await page.get_by_label("Filter models").fill("")
    await check_accessibility(page)
    await screenshot(page, "models-router-list")
    saved = await saved_router(page, router_id)
    assert (saved["strategy"], saved["targets"], saved["cooldown_s"]) == ("round_robin", [third, first, second], 45)

    # Editing shows what was saved; a new order and strategy are kept.
    await listed.get_by_role("link", name=f"Edit {router_id}").click()
    await page.wait_for_url("**/ui/models/router/edit/**")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Edit router")
    await expect(page.get_by_label("Model id")).to_have_value(router_id)
    await expect(page.get_by_label("Model id")).to_have_attribute("readonly", "")
    await expect(page.get_by_label("Strategy")).to_have_value("round_robin")
    await expect(page.get_by_label("Cool-down in seconds")).to_have_value("45")
    await expect(page.locator("#cooling-summary")).to_have_text("No target is cooling down now.")
    await page.get_by_role("button", name="Move down target 1").click()
    await page.get_by_role("button", name="Remove target 3").click()
    await expect(page.get_by_role("button", name="Remove target 2")).to_be_focused()
    await page.get_by_label("Strategy").select_option("fallback")
    await page.get_by_role("button", name="Save router").click()
    await page.wait_for_url("**/ui/models/")
    saved = await saved_router(page, router_id)
    assert (saved["strategy"], saved["targets"], saved["cooldown_s"]) == ("fallback", [first, third], 45)
    await expect(table_row(page, router_id).locator(".router-targets li")).to_have_text([first, third])

    # Deleting asks first (the shared confirm dialog); Cancel keeps it.
    await page.goto(f"/ui/models/router/edit/?id={router_id}")
    await page.get_by_role("button", name="Delete router").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text(f"Delete the router {router_id}?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    await expect(page.get_by_role("button", name="Delete router")).to_be_focused()
    await page.get_by_role("button", name="Delete router").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete router").click()
    await page.wait_for_url("**/ui/models/")
    await expect(page.locator("#models-status")).not_to_have_text("Loading models…")
    await expect(table_row(page, router_id)).to_have_count(0)
    assert (await page.request.get(f"{ROUTERS}/{router_id}")).status == 404


async def test_the_apis_errors_are_shown_by_their_fields(
    signed_in_page: Page, client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    page = signed_in_page
    first, second = (await serve_models(client, fake_upstream, 2))["models"]
    gone = await serve_models(client, fake_upstream, 1, stem="gone")

    # An id already served (here: one of the targets, an API model's) is a 409, shown at the model id.
    await page.goto(NEW)
    await page.get_by_label("Model id").fill(first)
    await target_select(page, 1).select_option(second)
    async with page.expect_response(lambda r: r.url.endswith(ROUTERS) and r.request.method == "POST") as answer:
        await page.get_by_role("button", name="Create router").click()
    assert (await answer.value).status == 409
    await expect(page.locator("#model_id-error")).to_contain_text(f"The model id `{first}` is already served")
    await expect(page.get_by_label("Model id")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#error-summary a[href='#model_id']")).to_be_visible()
    await expect(page.locator("#error-summary")).to_be_focused()
    await check_accessibility(page)
    await screenshot(page, "models-router-error")

    # A target that stopped being served after the page loaded: a 400 at `targets.1`, shown at the second row.
    router_id = unique("errors")
    await page.get_by_label("Model id").fill(router_id)
    await page.get_by_role("button", name="Add target").click()
    await target_select(page, 2).select_option(gone["models"][0])
    assert (await client.delete(f"/bodhi/v1/models/api/{gone['id']}")).status_code == 204
    await page.get_by_role("button", name="Create router").click()
    await expect(page.locator("#targets-1-error")).to_contain_text("is not a served model id")
    await expect(target_select(page, 2)).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#model_id-error")).to_be_hidden()
    await expect(page.locator("#error-summary a[href='#targets-1']")).to_be_visible()
    await expect(page.locator(".target-row.field-invalid")).to_have_count(1)
    await screenshot(page, "models-router-target-error")

    # The same target twice is the whole list's error; a cool-down out of range is the cool-down's.
    await target_select(page, 2).select_option(second)
    await page.get_by_role("button", name="Create router").click()
    await expect(page.locator("#targets-error")).to_contain_text("listed twice")
    await target_select(page, 1).select_option(first)
    await page.get_by_label("Cool-down in seconds").fill("4000")
    await page.get_by_role("button", name="Create router").click()
    await expect(page.locator("#cooldown_s-error")).to_contain_text("3600")
    await expect(page.locator("#targets-error")).to_be_hidden()

    # Checked before sending: a row with no model chosen, and no rows at all.
    await page.get_by_label("Cool-down in seconds").fill("0")
    await page.get_by_role("button", name="Add target").click()
    await page.get_by_role("button", name="Create router").click()
    await expect(page.locator("#targets-2-error")).to_have_text("Choose a model for target 3, or remove it.")
    for _ in range(3):
        await page.get_by_role("button", name="Remove target 1").click()
    await expect(page.get_by_role("button", name="Add target")).to_be_focused()
    await page.get_by_role("button", name="Create router").click()
    await expect(page.locator("#targets-error")).to_contain_text("Add at least one target")
    assert (await page.request.get(f"{ROUTERS}/{router_id}")).status == 404


async def test_an_id_taken_by_a_router_is_shown_at_the_model_id(
    signed_in_page: Page, client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    page = signed_in_page
    (target,) = (await serve_models(client, fake_upstream, 1))["models"]
    taken = unique("taken")
    created = await page.request.post(ROUTERS, data={"model_id": taken, "targets": [target]})
    assert created.status == 201, await created.text()
    await page.goto(NEW)
    await page.get_by_label("Model id").fill(taken)
    await target_select(page, 1).select_option(target)
    async with page.expect_response(lambda r: r.url.endswith(ROUTERS) and r.request.method == "POST") as answer:
        await page.get_by_role("button", name="Create router").click()
    assert (await answer.value).status == 409
    await expect(page.locator("#model_id-error")).to_contain_text(f"the router `{taken}`")


async def test_cooling_targets_are_shown_in_the_table_and_the_form(
    signed_in_page: Page, client: httpx.AsyncClient, fake_upstream: FakeUpstream, redis_url: str, redis_prefix: str
) -> None:
    page = signed_in_page
    first, second = (await serve_models(client, fake_upstream, 2))["models"]
    router_id = unique("cooling")
    created = await page.request.post(ROUTERS, data={"model_id": router_id, "targets": [first, second]})
    assert created.status == 201, await created.text()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await redis.set(RedisKeys(namespace=redis_prefix).target_cooldown(first), "1", ex=120)
    finally:
        await redis.aclose()

    await page.goto("/ui/models/")
    listed = table_row(page, router_id)
    await expect(listed.locator(".router-targets li").first.locator(".badge-cooling")).to_contain_text("cooling down")
    await expect(listed.locator(".router-targets li").nth(1).locator(".badge-cooling")).to_have_count(0)

    await listed.get_by_role("link", name=f"Edit {router_id}").click()
    await expect(page.locator("#cooling-summary")).to_contain_text(f"Cooling down now: {first} (")
    await expect(page.locator("#targets-0-cooling")).to_contain_text("Cooling down: tried again in")
    await expect(page.locator("#targets-1-cooling")).to_be_hidden()
    note = re.fullmatch(
        r"Cooling down: tried again in (\d+) s\.", await page.locator("#targets-0-cooling").inner_text()
    )
    assert note, "the note names the seconds left"
    left = int(note[1])
    assert 100 < left <= 120
    # The note goes with its target when the rows move.
    await page.get_by_role("button", name="Move down target 1").click()
    await expect(page.locator("#targets-1-cooling")).to_be_visible()
    await expect(page.locator("#targets-0-cooling")).to_be_hidden()
    await check_accessibility(page)
    await screenshot(page, "models-router-cooling")


async def test_a_power_user_sees_routers_but_gets_the_needs_role_page(
    page: Page, make_user: MakeUser, gateway: Gateway, client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    (target,) = (await serve_models(client, fake_upstream, 1))["models"]
    router_id = unique("shown")
    manager = await make_user("manager")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        login = await http.post(
            "/bodhi/v1/auth/login", json={"username": manager.username, "password": manager.password}
        )
        assert login.status_code == 200, login.text
        created = await http.post(ROUTERS, json={"model_id": router_id, "targets": [target]})
        assert created.status_code == 201, created.text

    await log_in(page, await make_user("power_user"))
    await page.goto("/ui/models/")
    listed = table_row(page, router_id)
    await expect(listed.locator(".badge-router")).to_be_visible()
    await expect(listed.get_by_role("link", name=router_id, exact=True)).to_be_visible()  # any user may chat with it
    await expect(listed.get_by_role("link", name="Edit")).to_have_count(0)
    await expect(listed.get_by_role("button", name="Delete")).to_have_count(0)
    await expect(page.get_by_role("link", name="New API Model")).to_be_visible()
    await expect(page.get_by_role("link", name="New router")).to_have_count(0)

    for path in (NEW, f"/ui/models/router/edit/?id={router_id}"):
        response = await page.goto(path)
        assert response is not None
        assert response.status == 403, path
        await expect(page.get_by_role("heading", level=1)).to_have_text("This page is not for your role")
        await expect(page.locator("main")).to_contain_text("It needs the role Manager or higher")
    await check_accessibility(page)
    await screenshot(page, "models-router-needs-role")


async def test_the_router_form_and_table_fit_a_phone(
    signed_in_page: Page, client: httpx.AsyncClient, fake_upstream: FakeUpstream, redis_url: str, redis_prefix: str
) -> None:
    page = signed_in_page
    ids = (await serve_models(client, fake_upstream, 3, stem="a-long-provider-model-name-that-must-wrap-on-a-phone"))[
        "models"
    ]
    router_id = unique("team/a-router-with-a-long-name-for-phones")
    created = await page.request.post(ROUTERS, data={"model_id": router_id, "targets": ids, "strategy": "least_busy"})
    assert created.status == 201, await created.text()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await redis.set(RedisKeys(namespace=redis_prefix).target_cooldown(ids[1]), "1", ex=90)
    finally:
        await redis.aclose()
    await page.set_viewport_size({"width": 375, "height": 740})

    await page.goto(f"/ui/models/router/edit/?id={router_id}")
    await expect(target_select(page, 3)).to_have_value(ids[2])
    await screenshot(page, "models-router-phone")
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await check_accessibility(page)
    await screenshot(page, "models-router-phone")

    await page.goto("/ui/models/")
    await expect(table_row(page, router_id).locator("td[data-label='Strategy']")).to_have_text("Least busy")
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, "models-router-list-phone")


@pytest.mark.parametrize("role", list(Role))
def test_the_router_templates_render_for_every_role(role: Role) -> None:
    page = page_for_user(user(role))
    for model_id in ("", "team/gpt:latest"):
        rendered = html(page, "models_router_form.html", kind="models", title="T", model_id=model_id)
        assert '<body class="page-models"' in rendered
        assert f'data-model-id="{model_id}"' in rendered
        assert ("Delete router" in rendered) is bool(model_id)
        assert not INLINE_SCRIPT.search(rendered)
        assert not INLINE_STYLE.search(rendered)
    for may_route in (True, False):
        listing = html(page, "models.html", kind="models", title="T", may_create=True, may_route=may_route)
        assert ('href="/ui/models/router/new/"' in listing) is may_route


async def test_the_router_pages_are_for_managers_and_above(gateway: Gateway, make_user: MakeUser) -> None:
    paths = (NEW, "/ui/models/router/edit/?id=team/gpt")
    for role in ("user", "power_user", "manager", "admin"):
        person = await make_user(role)
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
            login = await http.post(
                "/bodhi/v1/auth/login", json={"username": person.username, "password": person.password}
            )
            assert login.status_code == 200, login.text
            listing = await http.get("/ui/models/")
            assert ('href="/ui/models/router/new/"' in listing.text) is (role in ("manager", "admin"))
            for path in paths:
                response = await http.get(path)
                assert response.status_code == (200 if role in ("manager", "admin") else 403), (role, path)
                assert not INLINE_SCRIPT.search(response.text), path
                assert not INLINE_STYLE.search(response.text), path
            if role == "manager":
                blank = await http.get("/ui/models/router/edit/")
                assert (blank.status_code, blank.headers["location"]) == (303, NEW)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        anonymous = await http.get(NEW)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/ui/login/?next={NEW}"
