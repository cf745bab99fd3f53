"""The models pages: the unified table (`/ui/models/`), the API-model form (new, edit), the local-alias form and
the router form.

Each is a shell whose module (`static/js/models*.js`) calls `/bodhi/v1/models/...` (and `/bodhi/v1/routers`); the
API checks every role again. The API-model and alias forms are for power users and above, the router form for
managers and above (lower roles see a page saying so); the table is for everyone.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response

from bodhi_api.auth.roles import Role
from bodhi_api.ui.pages import ManagerPage, Page, SignedInPage, page_for

router = APIRouter(include_in_schema=False)

PowerUserPage = Annotated[Page, page_for(Role.POWER_USER)]


@router.get("/ui/models/")
async def models_list(page: SignedInPage) -> Response:
    assert page.user is not None
    return page.render(
        "models.html",
        kind="models",
        title="Models",
        may_create=page.user.role.at_least(Role.POWER_USER),
        may_route=page.user.role.at_least(Role.MANAGER),
    )


@router.get("/ui/models/api/new/")
async def api_model_new(page: PowerUserPage) -> Response:
    return page.render("models_api_form.html", kind="models", title="New API model", api_model_id="")


@router.get("/ui/models/api/edit/")
async def api_model_edit(page: PowerUserPage, api_model_id: Annotated[str, Query(alias="id")] = "") -> Response:
    if not api_model_id:
        return RedirectResponse("/ui/models/api/new/", status_code=303)
    return page.render("models_api_form.html", kind="models", title="Edit API model", api_model_id=api_model_id)


@router.get("/ui/models/alias/new/")
async def alias_new(page: PowerUserPage) -> Response:
    return page.render("models_alias_form.html", kind="models", title="New local alias", alias="")


@router.get("/ui/models/alias/edit/")
async def alias_edit(page: PowerUserPage, alias: str = "") -> Response:
    if not alias:
        return RedirectResponse("/ui/models/alias/new/", status_code=303)
    return page.render("models_alias_form.html", kind="models", title="Edit local alias", alias=alias)


@router.get("/ui/models/router/new/")
async def router_new(page: ManagerPage) -> Response:
    return page.render("models_router_form.html", kind="models", title="New router", model_id="")


@router.get("/ui/models/router/edit/")
async def router_edit(page: ManagerPage, model_id: Annotated[str, Query(alias="id")] = "") -> Response:
    if not model_id:
        return RedirectResponse("/ui/models/router/new/", status_code=303)
    return page.render("models_router_form.html", kind="models", title="Edit router", model_id=model_id)
