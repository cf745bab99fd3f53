"""The web UI's own routes: the entry redirects (`/ui/` is the models page), the login page and the API reference.

Every page is HTML around a script module that calls the JSON API; these routes only choose which page to show.
They are not in the OpenAPI document (it describes the API, which the pages use like any other client).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response

from bodhi_api.ui.pages import LOGIN_PATH, AnyPage, SignedInPage

router = APIRouter(include_in_schema=False)

HOME_PATH = "/ui/"


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a UI path of this site only, never another site (an open redirect)."""
    if not target or not target.startswith(("/ui/", "/docs")) or target.startswith(LOGIN_PATH):
        return HOME_PATH
    if "\\" in target or any(ord(c) < 0x20 for c in target):  # browsers read `/ui/\evil` oddly; keep it plain
        return HOME_PATH
    return target


@router.get("/")
async def root() -> Response:
    return RedirectResponse(HOME_PATH, status_code=302)


@router.get("/ui/")
async def home(page: SignedInPage) -> Response:
    # Signed in first, so a visitor without a session logs in and comes back here (`next=/ui/`).
    return RedirectResponse("/ui/models/", status_code=302)


@router.get("/ui/login/")
async def login(page: AnyPage, next_path: Annotated[str | None, Query(alias="next")] = None) -> Response:
    target = safe_next(next_path)
    if page.user is not None:
        return RedirectResponse(target, status_code=303)
    return page.render("login.html", kind="login", title="Log in", next=target)


@router.get("/docs")
async def api_reference(page: AnyPage) -> Response:
    return page.render("docs.html", kind="docs", title="API reference", vendor=("markdown",))
