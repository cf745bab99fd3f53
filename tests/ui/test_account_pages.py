"""The account pages over plain HTTP: who gets which page, and no inline script or style in any of them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Gateway
from tests.ui.conftest import MakeUser
from tests.ui.test_pages import INLINE_SCRIPT, INLINE_STYLE, assert_ui_headers

PAGES = ("/ui/tokens/", "/ui/users/", "/ui/usage/")


@pytest.fixture
async def manager_http(gateway: Gateway, make_user: MakeUser) -> AsyncIterator[httpx.AsyncClient]:
    user = await make_user("manager")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        login = await http.post("/bodhi/v1/auth/login", json={"username": user.username, "password": user.password})
        assert login.status_code == 200, login.text
        yield http


@pytest.mark.parametrize("path", PAGES)
async def test_the_pages_need_a_session(gateway: Gateway, path: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        response = await http.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
async def test_the_pages_have_no_inline_code(manager_http: httpx.AsyncClient, path: str) -> None:
    response = await manager_http.get(path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert_ui_headers(response)
    assert not INLINE_SCRIPT.search(response.text)
    assert not INLINE_STYLE.search(response.text)


async def test_only_the_usage_page_loads_the_chart_library(manager_http: httpx.AsyncClient) -> None:
    assert "uPlot.iife.min.js" in (await manager_http.get("/ui/usage/")).text
    assert "uPlot.iife.min.js" not in (await manager_http.get("/ui/tokens/")).text


async def test_the_scopes_offered_stop_at_the_users_role(gateway: Gateway, make_user: MakeUser) -> None:
    user = await make_user("user")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        await http.post("/bodhi/v1/auth/login", json={"username": user.username, "password": user.password})
        page = (await http.get("/ui/tokens/")).text
    assert '<option value="user">User</option>' in page
    assert 'value="power_user"' not in page


async def test_once_users_exist_setup_leads_to_the_login_page(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        response = await http.get("/ui/setup/")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login/"
