"""The models page in a browser: one table of local aliases and API models, chat links, roles, deleting."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from bodhi_api.auth.roles import Role
from tests.conftest import TEST_API_KEY, Gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.tiny_gguf import write_tiny_llama_gguf
from tests.ui.conftest import MakeUser, check_accessibility, log_in, screenshot
from tests.ui.test_pages import INLINE_SCRIPT, INLINE_STYLE
from tests.ui.test_templates import html, page_for_user, user

API = "/bodhi/v1/models/api"
PAGES = ("/ui/models/", "/ui/models/api/new/", "/ui/models/api/edit/?id=x", "/ui/models/alias/new/")
TEMPLATES: dict[str, dict[str, Any]] = {
    "models.html": {"may_create": True, "may_route": True},
    "models_api_form.html": {"api_model_id": "0b6c3c9e-0000-4000-8000-000000000000"},
    "models_alias_form.html": {"alias": "owner/repo:Q8_0"},
}


@pytest.fixture
def provider() -> Iterator[FakeUpstream]:
    """A provider of this test's own."""
    upstream = FakeUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def create_api_model(http: httpx.AsyncClient, *, base_url: str, models: list[str], **fields: Any) -> Any:
    body = {"name": unique("ui-models"), "base_url": base_url, "api_key": TEST_API_KEY, "models": models} | fields
    created = await http.post(API, json=body)
    assert created.status_code == 201, created.text
    return created.json()


async def create_alias(http: httpx.AsyncClient, folder: Path) -> str:
    alias = unique("tiny-alias")
    path = write_tiny_llama_gguf(folder / f"{alias}.gguf")
    created = await http.post("/bodhi/v1/models/alias", json={"alias": alias, "path": str(path)})
    assert created.status_code == 201, created.text
    return alias


def row(page: Page, name: str) -> Any:
    return page.locator("#models-rows tr").filter(has_text=name)


async def stub_chat_page(page: Page) -> None:
    """Answer /ui/chat/ with a blank page: only the link is under test here, not the chat page's own script."""
    await page.route("**/ui/chat/**", lambda route: route.fulfill(status=200, content_type="text/plain", body="chat"))


async def test_the_table_shows_api_models_and_aliases_with_chat_links(
    signed_in_page: Page, client: httpx.AsyncClient, provider: FakeUpstream, tmp_path: Path
) -> None:
    page = signed_in_page
    ids = [unique("gpt-4o"), unique("gpt-4o-mini"), unique("o3"), unique("o4")]
    prefix = unique("openai") + "/"
    api_model = await create_api_model(client, base_url=provider.base_url, models=ids, prefix=prefix)
    alias = await create_alias(client, tmp_path)

    await page.goto("/ui/models/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Models")
    api_row = row(page, api_model["name"])
    await expect(api_row.locator(".badge")).to_have_text("☁️ API")
    await expect(api_row).to_contain_text("OpenAI")
    await expect(api_row).to_contain_text(provider.base_url)
    await expect(api_row).to_contain_text(f"Prefix {prefix}")
    links = api_row.locator(".model-links a")
    await expect(links).to_have_text([f"{prefix}{model}" for model in ids[:3]])  # the top 3, as served
    await expect(api_row).to_contain_text("and 1 more")
    await expect(api_row.get_by_role("link", name=f"Edit {api_model['name']}")).to_be_visible()
    await expect(api_row.get_by_role("button", name=f"Delete {api_model['name']}")).to_be_visible()
    alias_row = row(page, alias)
    await expect(alias_row.locator(".badge")).to_have_text("model")
    await expect(alias_row).to_contain_text(f"{alias}.gguf")
    await expect(page.get_by_role("link", name="New API Model")).to_have_attribute("href", "/ui/models/api/new/")
    await expect(page.get_by_role("link", name="New local alias")).to_have_attribute("href", "/ui/models/alias/new/")
    await check_accessibility(page)
    await screenshot(page, "models")

    # The filter keeps only the rows that match, by name or by a served id.
    await page.get_by_label("Filter models").fill(ids[1])
    await expect(api_row).to_be_visible()
    await expect(alias_row).to_be_hidden()
    await expect(page.locator("#models-status")).to_contain_text("match")
    await page.get_by_label("Filter models").fill("")
    await expect(alias_row).to_be_visible()

    # A served id opens chat with that model selected (the chat page reads `?model=`).
    await stub_chat_page(page)
    await links.nth(1).click()
    await page.wait_for_url(lambda url: "/ui/chat/" in url)
    assert httpx.URL(page.url).params["model"] == f"{prefix}{ids[1]}"


async def test_the_models_page_fits_a_phone(
    signed_in_page: Page, client: httpx.AsyncClient, provider: FakeUpstream
) -> None:
    page = signed_in_page
    long_id = unique("a-provider-model-with-a-rather-long-name-v2")
    api_model = await create_api_model(client, base_url=provider.base_url, models=[long_id])
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/ui/models/")
    await expect(row(page, api_model["name"])).to_be_visible()
    await screenshot(page, "models-phone")
    # The table scrolls inside its own box; the page itself never scrolls sideways.
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await check_accessibility(page)


async def test_deleting_asks_first_and_removes_the_row(
    signed_in_page: Page, client: httpx.AsyncClient, provider: FakeUpstream
) -> None:
    page = signed_in_page
    api_model = await create_api_model(client, base_url=provider.base_url, models=[unique("doomed")])
    await page.goto("/ui/models/")
    target = row(page, api_model["name"])
    dialog = page.get_by_role("dialog")

    await target.get_by_role("button", name=f"Delete {api_model['name']}").click()
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("heading")).to_have_text(f"Delete the API model {api_model['name']}?")
    await check_accessibility(page)
    await screenshot(page, "models-delete-dialog")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(target).to_be_visible()
    assert (await client.get(f"{API}/{api_model['id']}")).status_code == 200

    await target.get_by_role("button", name=f"Delete {api_model['name']}").click()
    await dialog.get_by_role("button", name="Delete").click()
    await expect(target).to_have_count(0)
    await expect(page.locator("#models-notice")).to_have_text(f"Deleted the API model {api_model['name']}.")
    assert (await client.get(f"{API}/{api_model['id']}")).status_code == 404


async def test_deleting_an_alias_removes_its_row(
    signed_in_page: Page, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    page = signed_in_page
    alias = await create_alias(client, tmp_path)
    await page.goto("/ui/models/")
    await row(page, alias).get_by_role("button", name=f"Delete {alias}").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(row(page, alias)).to_have_count(0)
    assert (await client.get(f"/bodhi/v1/models/alias/{alias}")).status_code == 404


async def test_a_user_sees_the_models_but_no_way_to_change_them(
    page: Page, make_user: MakeUser, client: httpx.AsyncClient, provider: FakeUpstream, tmp_path: Path
) -> None:
    api_model = await create_api_model(client, base_url=provider.base_url, models=[unique("shared")])
    alias = await create_alias(client, tmp_path)
    await log_in(page, await make_user("user"))
    await page.goto("/ui/models/")
    await expect(row(page, api_model["name"]).locator(".model-links a")).to_have_count(1)
    await expect(row(page, alias)).to_be_visible()
    await expect(page.locator("#models-rows").get_by_role("link", name="Edit")).to_have_count(0)
    await expect(page.locator("#models-rows").get_by_role("button", name="Delete")).to_have_count(0)
    await expect(page.get_by_role("link", name="New API Model")).to_have_count(0)
    await expect(page.get_by_role("link", name="New local alias")).to_have_count(0)
    await check_accessibility(page)

    response = await page.goto("/ui/models/api/new/")
    assert response is not None
    assert response.status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("This page is not for your role")


async def test_a_power_user_may_edit_only_their_own_api_models(
    page: Page, make_user: MakeUser, client: httpx.AsyncClient, provider: FakeUpstream, tmp_path: Path
) -> None:
    others = await create_api_model(client, base_url=provider.base_url, models=[unique("admins")])
    alias = await create_alias(client, tmp_path)
    await log_in(page, await make_user("power_user"))
    body = {"name": unique("ui-mine"), "base_url": provider.base_url, "api_key": TEST_API_KEY, "models": ["m1"]}
    created = await page.request.post(API, data=body)  # with the power user's session cookie
    assert created.status == 201, await created.text()
    own = await created.json()
    await page.goto("/ui/models/")

    mine = row(page, own["name"])
    await expect(mine.get_by_role("link", name=f"Edit {own['name']}")).to_be_visible()
    await expect(mine.get_by_role("button", name=f"Delete {own['name']}")).to_be_visible()
    theirs = row(page, others["name"])
    await expect(theirs.locator(".model-links a")).to_have_count(1)
    await expect(theirs.get_by_role("link", name="Edit")).to_have_count(0)
    await expect(theirs.get_by_role("button", name="Delete")).to_have_count(0)
    await expect(row(page, alias).get_by_role("link", name=f"Edit {alias}")).to_be_visible()  # aliases: any power user
    await expect(page.get_by_role("link", name="New API Model")).to_be_visible()

    # The form for another's API model says why it cannot be used (the API would refuse the save).
    await page.goto(f"/ui/models/api/edit/?id={others['id']}")
    await expect(page.locator("#form-status")).to_contain_text("You may edit only the API models you created")
    await expect(page.locator("#api-model-form")).to_be_hidden()
    await page.goto("/ui/models/api/edit/")
    assert page.url.endswith("/ui/models/api/new/")


@pytest.mark.parametrize("role", list(Role))
def test_the_models_templates_render_for_every_role(role: Role) -> None:
    page = page_for_user(user(role))
    for template, context in TEMPLATES.items():
        assert '<body class="page-models"' in html(page, template, kind="models", title="T", **context)
    assert 'data-alias="owner/repo:Q8_0"' in html(
        page, "models_alias_form.html", kind="models", title="T", alias="owner/repo:Q8_0"
    )


async def test_the_models_pages_have_no_inline_code_and_are_for_their_roles(
    gateway: Gateway, make_user: MakeUser
) -> None:
    for role, form_status in (("user", 403), ("power_user", 200)):
        person = await make_user(role)
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
            login = await http.post(
                "/bodhi/v1/auth/login", json={"username": person.username, "password": person.password}
            )
            assert login.status_code == 200, login.text
            for path in PAGES:
                response = await http.get(path)
                assert response.status_code == (200 if path == "/ui/models/" else form_status), path
                assert not INLINE_SCRIPT.search(response.text), path
                assert not INLINE_STYLE.search(response.text), path
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        anonymous = await http.get("/ui/models/api/new/")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/ui/login/?next=/ui/models/api/new/"
