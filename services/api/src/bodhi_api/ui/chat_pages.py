"""The chat page (`/ui/chat/`): streamed answers from any served model, chats kept in the browser.

The page is a shell: its script lists models with ``GET /bodhi/v1/models``, sends ``POST /v1/chat/completions``
with the session cookie, and keeps the chats in the browser's IndexedDB (the gateway stores no conversation).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from bodhi_api.ui.pages import SignedInPage

router = APIRouter(include_in_schema=False)


@router.get("/ui/chat/")
async def chat(page: SignedInPage) -> Response:
    # `?model=` is read by the page's script: it preselects that model for a new chat.
    return page.render("chat.html", kind="chat", title="Chat", vendor=("markdown",))
