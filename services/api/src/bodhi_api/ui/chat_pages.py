"""The chat page (`/ui/chat/`): streamed answers from any served model, chats kept in the browser."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
