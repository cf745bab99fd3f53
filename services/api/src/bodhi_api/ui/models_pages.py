"""The models pages: the unified table (`/ui/models/`), the API-model form (new, edit) and the local-alias form."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
