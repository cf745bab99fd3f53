"""The web UI: server-rendered pages under ``/ui/`` whose scripts call the same JSON API as any other client.

``install_ui`` adds it to an app; ``pages.py`` explains how a page is written and ``README.md`` how to add one.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from bodhi_api.ui import account_pages, chat_pages, models_pages
from bodhi_api.ui.pages import STATIC_PATH, LoginRequired, Pages, RoleRequired, explain_role_required, redirect_to_login
from bodhi_api.ui.routes import router
from bodhi_api.ui.security_headers import SecurityHeadersMiddleware

STATIC_DIR = Path(__file__).parent / "static"


def install_ui(app: FastAPI) -> None:
    """Serve the web UI from ``app``: its pages, its static files and its security headers."""
    app.state.ui_pages = Pages()
    if not mimetypes.inited:  # the system's mime.types, read on the first static file unless read here, off the loop
        mimetypes.init()
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_exception_handler(LoginRequired, redirect_to_login)
    app.add_exception_handler(RoleRequired, explain_role_required)
    app.include_router(router)
    for pages in (models_pages, chat_pages, account_pages):
        app.include_router(pages.router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="ui-static")
