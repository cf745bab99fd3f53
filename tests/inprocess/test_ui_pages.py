"""The web UI's pages in-process: every page renders (from templates compiled before the loop serves, so a
render reads no file), for the roles it is for; others are sent to log in or told which role it needs."""

from __future__ import annotations

import re

import pytest

from bodhi_api.auth.roles import Role
from bodhi_api.ui.security_headers import CONTENT_SECURITY_POLICY
from tests.inprocess.harness import InProcessApp

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)

# Every page, and the lowest role that sees it.
PAGES = {
    "/ui/models/": Role.USER,
    "/ui/models/api/new/": Role.POWER_USER,
    "/ui/models/api/edit/?id=abc": Role.POWER_USER,
    "/ui/models/alias/new/": Role.POWER_USER,
    "/ui/models/alias/edit/?alias=tiny": Role.POWER_USER,
    "/ui/models/router/new/": Role.MANAGER,
    "/ui/models/router/edit/?id=r": Role.MANAGER,
    "/ui/chat/": Role.USER,
    "/ui/tokens/": Role.USER,
    "/ui/usage/": Role.USER,
    "/ui/users/": Role.MANAGER,
}


@pytest.mark.parametrize("role", list(Role))
async def test_every_page_renders_for_the_roles_it_is_for(bodhi: InProcessApp, role: Role) -> None:
    user = await bodhi.create_user(role)
    browser = await bodhi.session_client(user)

    for path, lowest in PAGES.items():
        response = await browser.get(path)
        if role.at_least(lowest):
            assert response.status_code == 200, (path, response.text[:300])
            assert "Not allowed" not in response.text
        else:
            assert response.status_code == 403, path
            assert "Not allowed" in response.text
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert user.username in response.text  # the signed-in header names who is looking
        assert not INLINE_SCRIPT.search(response.text)


@pytest.mark.parametrize("path", list(PAGES))
async def test_pages_send_anonymous_visitors_to_log_in(bodhi: InProcessApp, path: str) -> None:
    response = await bodhi.client().get(path)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login/?next=/ui/")


async def test_the_public_pages_and_the_redirects(bodhi: InProcessApp) -> None:
    anonymous = bodhi.client()
    for path in ("/ui/login/", "/docs", "/ui/setup/"):  # no user yet: the setup wizard shows too
        response = await anonymous.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
    root = await anonymous.get("/")
    assert (root.status_code, root.headers["location"]) == (302, "/ui/")
    home = await anonymous.get("/ui/")
    assert (home.status_code, home.headers["location"]) == (303, "/ui/login/?next=/ui/")
    kept = await anonymous.get("/ui/login/", params={"next": "/ui/models/?x=1"})
    assert 'data-next="/ui/models/?x=1"' in kept.text
    refused = await anonymous.get("/ui/login/", params={"next": "//evil.example/ui/"})
    assert 'data-next="/ui/"' in refused.text

    browser = await bodhi.session_client(await bodhi.create_user(Role.USER))
    signed_in = await browser.get("/ui/")
    assert (signed_in.status_code, signed_in.headers["location"]) == (302, "/ui/models/")
    onward = await browser.get("/ui/login/", params={"next": "/docs"})
    assert (onward.status_code, onward.headers["location"]) == (303, "/docs")
    blank_edit = await browser.get("/ui/models/alias/edit/")
    assert blank_edit.status_code == 403  # a user: not allowed, before any redirect
    power = await bodhi.session_client(await bodhi.create_user(Role.POWER_USER))
    blank = await power.get("/ui/models/api/edit/")
    assert (blank.status_code, blank.headers["location"]) == (303, "/ui/models/api/new/")


async def test_static_files_are_served_off_the_loop(bodhi: InProcessApp) -> None:
    anonymous = bodhi.client()
    css = await anonymous.get("/ui/static/app.css")
    script = await anonymous.get("/ui/static/js/api.js")
    missing = await anonymous.get("/ui/static/js/nothing-here.js")

    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert script.status_code == 200
    assert "export" in script.text
    assert css.headers["cache-control"] == "no-cache"
    assert missing.status_code == 404
    again = await anonymous.get("/ui/static/app.css", headers={"If-None-Match": css.headers["etag"]})
    assert again.status_code == 304
