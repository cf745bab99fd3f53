"""The first-run setup wizard (`/ui/setup/`), tokens (`/ui/tokens/`), users (`/ui/users/`) and usage (`/ui/usage/`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from bodhi_api.auth.roles import Role, TokenScope
from bodhi_api.auth.users import any_user_exists
from bodhi_api.deps import ResourcesDep
from bodhi_api.ui.pages import LOGIN_PATH, AnyPage, ManagerPage, SignedInPage

router = APIRouter(include_in_schema=False)

# Quick picks for an API model's base URL (and its API format): the providers the docs name as tested.
PROVIDER_PICKS = (
    ("OpenAI", "https://api.openai.com/v1", "openai"),
    ("OpenRouter", "https://openrouter.ai/api/v1", "openai"),
    ("HuggingFace", "https://router.huggingface.co/v1", "openai"),
    ("Anthropic", "https://api.anthropic.com/v1", "anthropic"),
)


@router.get("/ui/setup/")
async def setup(page: AnyPage, resources: ResourcesDep) -> Response:
    # Only before the first user exists; the wizard's later steps run in the same page, signed in as that admin.
    if await any_user_exists(resources.db):
        return RedirectResponse(LOGIN_PATH, status_code=303)
    return page.render("setup.html", kind="setup", title="Set up Bodhi", providers=PROVIDER_PICKS)


@router.get("/ui/tokens/")
async def tokens(page: SignedInPage) -> Response:
    assert page.user is not None
    # Offered only up to the user's role; the API refuses a higher scope anyway.
    scopes = [scope for scope in TokenScope if page.user.role.at_least(scope.role)]
    return page.render("tokens.html", kind="tokens", title="Tokens", scopes=scopes)


@router.get("/ui/users/")
async def users(page: ManagerPage) -> Response:
    return page.render("users.html", kind="users", title="Users")


@router.get("/ui/usage/")
async def usage(page: SignedInPage) -> Response:
    assert page.user is not None
    everyone = page.user.role.at_least(Role.MANAGER)  # the API shows managers everyone's usage, others their own
    # Managers and admins set prices (PUT /bodhi/v1/prices/{model_id}); the API checks it itself.
    return page.render(
        "usage.html", kind="usage", title="Usage", vendor=("chart",), everyone=everyone, may_price=everyone
    )
