"""Rendering a web UI page: one Jinja2 environment per app, one ``Page`` per request.

A page route takes ``SignedInPage`` (a browser session is required: without one the browser is sent to the login
page) or ``AnyPage`` (the visitor may be anonymous) and returns ``page.render(template, kind=, title=)``. The
template extends ``base.html``; its data comes from the JSON API, fetched by the page's own script module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bodhi_api.auth.roles import Role
from bodhi_api.auth.sessions import COOKIE_NAME, session_user_id
from bodhi_api.auth.users import User, find_user
from bodhi_api.deps import ResourcesDep

LOGIN_PATH = "/ui/login/"
STATIC_PATH = "/ui/static"

ROLE_LABELS = {Role.USER: "User", Role.POWER_USER: "Power user", Role.MANAGER: "Manager", Role.ADMIN: "Admin"}

# Groups of vendored browser files a page may ask for with ``render(vendor=...)``; base.html writes their tags.
VENDOR_GROUPS = frozenset({"markdown", "chart"})


@dataclass(frozen=True, slots=True)
class NavLink:
    kind: str  # the ``kind`` of the page it leads to: that page's link is marked as the current one
    label: str
    href: str
    description: str  # a line on the home page
    role: Role = Role.USER  # shown only to users of at least this role (the API decides what they may do)


NAV = (
    NavLink("models", "Models", "/ui/models/", "API models and local models: what the gateway serves."),
    NavLink("chat", "Chat", "/ui/chat/", "Talk to any served model."),
    NavLink("tokens", "Tokens", "/ui/tokens/", "API tokens for your scripts and tools."),
    NavLink("users", "Users", "/ui/users/", "Accounts and their roles.", Role.MANAGER),
    NavLink("usage", "Usage", "/ui/usage/", "Requests, tokens and latency per model and user."),
    NavLink("docs", "API docs", "/docs", "The reference of the JSON API every page uses."),
)


class Pages:
    """The app's template environment, built once per app (in ``install_ui``), never at import."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("bodhi_api.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,  # a misspelt variable fails the render instead of printing nothing
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship in the package and never change while the process runs: no file check on a render,
            # and none ever dropped from the cache (a reload would read the file on the event loop).
            auto_reload=False,
            cache_size=-1,
        )
        self.env.globals.update(nav=NAV, static=STATIC_PATH, role_labels=ROLE_LABELS)
        # Every template read and compiled now, as the app is built (before its event loop serves anything), so
        # that rendering a page on a request touches no file.
        for name in self.env.list_templates():
            self.env.get_template(name)

    def render(self, template: str, context: dict[str, Any]) -> str:
        return self.env.get_template(template).render(context)


class LoginRequired(Exception):
    """Raised by ``SignedInPage`` without a valid session; ``redirect_to_login`` answers it."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


async def redirect_to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(exc.path, safe='/')}", status_code=303)


@dataclass(frozen=True, slots=True)
class Page:
    """One request's page: who is looking (None: nobody logged in) and how to render for them."""

    request: Request
    user: User | None

    def render(
        self, template: str, *, kind: str, title: str, vendor: tuple[str, ...] = (), **context: Any
    ) -> HTMLResponse:
        """Render ``template`` as a page of ``kind`` (``<body class="page-{kind}">``, the current nav link)."""
        unknown = set(vendor) - VENDOR_GROUPS
        if unknown:
            raise ValueError(f"unknown vendor groups {sorted(unknown)}; known: {sorted(VENDOR_GROUPS)}")
        pages: Pages = self.request.app.state.ui_pages
        html = pages.render(template, {**context, "user": self.user, "kind": kind, "title": title, "vendor": vendor})
        # Per-user HTML: never kept by a shared cache, nor shown again from the back button after logout.
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})


async def session_user(request: Request, resources: ResourcesDep) -> User | None:
    """The user of the request's browser session, if it is valid. Tokens do not count: pages are for browsers."""
    session_id = request.cookies.get(COOKIE_NAME)
    if not session_id:
        return None
    user_id = await session_user_id(resources.redis, resources.keys, session_id)
    return await find_user(resources.db, user_id) if user_id else None


async def any_page(request: Request, user: Annotated[User | None, Depends(session_user)]) -> Page:
    return Page(request=request, user=user)


async def signed_in_page(request: Request, user: Annotated[User | None, Depends(session_user)]) -> Page:
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return Page(request=request, user=user)


def page_for(role: Role) -> Any:
    """A dependency for a page of users of at least ``role``: others see a page saying which role it needs.

    It only hides what they could not use: the API checks the role again on every call the page makes.
    """

    async def dependency(page: Annotated[Page, Depends(signed_in_page)]) -> Page:
        assert page.user is not None
        if not page.user.role.at_least(role):
            raise RoleRequired(page, role)
        return page

    return Depends(dependency)


class RoleRequired(Exception):
    """Raised by ``page_for`` for a signed-in user of a lower role; ``explain_role_required`` answers it."""

    def __init__(self, page: Page, role: Role) -> None:
        super().__init__(role.value)
        self.page, self.role = page, role


async def explain_role_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RoleRequired)
    response = exc.page.render("forbidden.html", kind="forbidden", title="Not allowed", needed=exc.role)
    response.status_code = 403
    return response


AnyPage = Annotated[Page, Depends(any_page)]
SignedInPage = Annotated[Page, Depends(signed_in_page)]
ManagerPage = Annotated[Page, page_for(Role.MANAGER)]
