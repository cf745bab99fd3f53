"""The first-run setup wizard (`/ui/setup/`), tokens (`/ui/tokens/`), users (`/ui/users/`) and usage (`/ui/usage/`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
