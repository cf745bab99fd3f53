"""Sealing provider keys for the remote workers: the API can seal a key but holds nothing that opens one."""

from __future__ import annotations

from bodhi_api.settings import ApiSettings
from bodhi_shared.crypto import key_hint, seal


def seal_api_key(settings: ApiSettings, api_key: str, *, row: str) -> tuple[bytes, str]:
    """The sealed key (bound to ``row``) and its masked hint; the plaintext goes no further than this call."""
    sealed = seal(api_key, public_key=settings.load_worker_public_key(), row_id=row)
    return sealed.to_bytes(), key_hint(api_key)


def ephemeral_row(request_id: str) -> str:
    """The row a form's key (checked, never stored) is sealed for."""
    return f"ephemeral:{request_id}"
