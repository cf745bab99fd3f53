"""The web UI over plain HTTP (no browser): redirects, headers, no inline script or style, where login leads."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from bodhi_api.ui.routes import safe_next
from bodhi_api.ui.security_headers import CONTENT_SECURITY_POLICY
from tests.conftest import Gateway
from tests.ui.conftest import MakeUser

PAGES = ("/ui/login/", "/docs")
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=|\son[a-z]+=", re.IGNORECASE)


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        yield http


@pytest.fixture
async def signed_in_http(gateway: Gateway, make_user: MakeUser) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding the session cookie of a new user."""
    user = await make_user("user")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        login = await http.post("/bodhi/v1/auth/login", json={"username": user.username, "password": user.password})
        assert login.status_code == 200, login.text
        yield http


def assert_ui_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


async def test_the_root_and_the_home_page_lead_to_the_login_page(http: httpx.AsyncClient) -> None:
    root = await http.get("/")
    assert root.status_code == 302
    assert root.headers["location"] == "/ui/"
    home = await http.get("/ui/")
    assert home.status_code == 303
    assert home.headers["location"] == "/ui/login/?next=/ui/"
    assert_ui_headers(home)


@pytest.mark.parametrize("path", PAGES)
async def test_public_pages_are_html_with_a_strict_policy_and_no_inline_code(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert_ui_headers(response)
    assert not INLINE_SCRIPT.search(response.text)
    assert not INLINE_STYLE.search(response.text)


async def test_the_signed_in_home_is_the_models_page_without_inline_code(signed_in_http: httpx.AsyncClient) -> None:
    home = await signed_in_http.get("/ui/")
    assert home.status_code == 302
    assert home.headers["location"] == "/ui/models/"
    response = await signed_in_http.get("/ui/models/")
    assert response.status_code == 200
    assert_ui_headers(response)
    assert not INLINE_SCRIPT.search(response.text)
    assert not INLINE_STYLE.search(response.text)


async def test_static_files_are_served_revalidated_and_not_sniffed(http: httpx.AsyncClient) -> None:
    css = await http.get("/ui/static/app.css")
    script = await http.get("/ui/static/js/api.js")
    vendored = await http.get("/ui/static/vendor/marked/marked.umd.js")
    missing = await http.get("/ui/static/js/nothing-here.js")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert vendored.status_code == 200
    for response in (css, script, vendored):
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert missing.status_code == 404


async def test_the_json_api_gets_no_page_policy(http: httpx.AsyncClient) -> None:
    response = await http.get("/bodhi/v1/info")
    assert "content-security-policy" not in response.headers


async def test_a_signed_in_visitor_of_the_login_page_goes_where_they_were_going(
    signed_in_http: httpx.AsyncClient,
) -> None:
    onward = await signed_in_http.get("/ui/login/", params={"next": "/docs#op-get-v1-models"})
    elsewhere = await signed_in_http.get("/ui/login/", params={"next": "https://evil.example/"})
    assert onward.status_code == 303
    assert onward.headers["location"] == "/docs#op-get-v1-models"
    assert elsewhere.headers["location"] == "/ui/"


async def test_the_login_form_is_sent_on_only_to_this_site(http: httpx.AsyncClient) -> None:
    kept = await http.get("/ui/login/", params={"next": "/ui/models/?x=1"})
    refused = await http.get("/ui/login/", params={"next": "//evil.example/ui/"})
    assert 'data-next="/ui/models/?x=1"' in kept.text
    assert 'data-next="/ui/"' in refused.text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, "/ui/"),
        ("", "/ui/"),
        ("/ui/tokens/", "/ui/tokens/"),
        ("/docs", "/docs"),
        ("/ui/login/?next=/ui/", "/ui/"),  # never back to the login page
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui/\\evil.example", "/ui/"),
        ("/ui/\nx", "/ui/"),
        ("/bodhi/v1/user", "/ui/"),  # only pages
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


async def test_ui_routes_are_not_in_the_api_description(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path == "/" or path.startswith(("/ui", "/docs"))]


async def test_an_unknown_route_points_to_the_api_reference(http: httpx.AsyncClient) -> None:
    response = await http.get("/bodhi/v1/no-such-route")
    assert response.status_code == 404
    assert "/docs" in response.json()["error"]["message"]
