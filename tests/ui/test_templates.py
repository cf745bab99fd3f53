"""Every template renders for every kind of visitor (StrictUndefined: a missing variable fails), in-process."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from bodhi_api.auth.roles import Role
from bodhi_api.auth.users import User
from bodhi_api.ui.pages import Page, Pages, RoleRequired, page_for

TEMPLATES: dict[str, dict[str, Any]] = {
    "login.html": {"next": "/ui/"},
    "docs.html": {},
}


def page_for_user(user: User | None) -> Page:
    app = FastAPI()
    app.state.ui_pages = Pages()
    return Page(request=Request({"type": "http", "app": app, "headers": []}), user=user)


def html(page: Page, template: str, **context: Any) -> str:
    return bytes(page.render(template, **context).body).decode()


def user(role: Role) -> User:
    return User(id=uuid.uuid4(), username=f"someone-{role.value}", role=role)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
@pytest.mark.parametrize("role", [None, *Role])
def test_public_templates_render_for_anyone(template: str, role: Role | None) -> None:
    visitor = user(role) if role else None
    rendered = html(page_for_user(visitor), template, kind="x", title="T", **TEMPLATES[template])
    assert '<body class="page-x"' in rendered
    assert ("Log out" in rendered) is (visitor is not None)


@pytest.mark.parametrize("role", list(Role))
def test_the_navigation_shows_users_to_managers_and_admins_only(role: Role) -> None:
    rendered = html(page_for_user(user(role)), "docs.html", kind="docs", title="API reference")
    assert ('href="/ui/users/"' in rendered) is role.at_least(Role.MANAGER)
    assert 'href="/ui/models/"' in rendered


def test_the_current_page_is_marked_in_the_navigation() -> None:
    rendered = html(page_for_user(user(Role.USER)), "docs.html", kind="docs", title="API reference")
    assert '<a href="/docs" aria-current="page">API docs</a>' in rendered


def test_vendored_libraries_are_included_when_asked_for() -> None:
    page = page_for_user(None)
    plain = html(page, "docs.html", kind="docs", title="T")
    charted = html(page, "docs.html", kind="docs", title="T", vendor=("chart", "markdown"))
    assert "vendor/" not in plain
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "marked.umd.js", "purify.min.js", "highlight.min.js"):
        assert name in charted
    with pytest.raises(ValueError, match="unknown vendor groups"):
        page.render("docs.html", kind="docs", title="T", vendor=("jquery",))


async def test_a_page_for_managers_refuses_lower_roles_with_a_page_naming_the_role() -> None:
    dependency = page_for(Role.MANAGER).dependency
    assert await dependency(page_for_user(user(Role.ADMIN)))
    with pytest.raises(RoleRequired) as refused:
        await dependency(page_for_user(user(Role.POWER_USER)))
    rendered = html(refused.value.page, "forbidden.html", kind="forbidden", title="T", needed=Role.MANAGER)
    assert "It needs the role <strong>Manager</strong> or higher; yours is" in rendered
    assert "Power user" in rendered
