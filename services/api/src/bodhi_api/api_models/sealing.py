"""Sealing provider keys for the remote workers: the API can seal a key but holds nothing that opens one.

Every key is sealed for its row **and** the base URL it may be sent to (``crypto.key_binding``): a worker opens
it for that URL only. Rows sealed before keys were bound to URLs are re-bound when an API replica starts.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from bodhi_api.settings import ApiSettings
from bodhi_shared.crypto import LEGACY_VERSION, PublicKey, SealedSecret, key_binding, key_hint, rebind_legacy, seal

log = logging.getLogger(__name__)


async def seal_api_key(settings: ApiSettings, api_key: str, *, row: str, base_url: str) -> tuple[bytes, str]:
    """The sealed key (bound to ``row`` and ``base_url``) and its masked hint; the plaintext goes no further.

    A keyless provider's empty key is sealed too (its hint is empty): every row then holds a key bound to its URL,
    the workers open them all alike, and an empty one sends no key header at all.

    The public key is read at each use, so a rotated key file is picked up without a restart: in a thread, as a
    file read must not hold up the event loop."""
    public_key = await asyncio.to_thread(settings.load_worker_public_key)
    sealed = seal(api_key, public_key=public_key, binding=key_binding(row, base_url))
    return sealed.to_bytes(), key_hint(api_key) if api_key else ""


def ephemeral_row(request_id: str) -> str:
    """The row a form's key (checked, never stored) is sealed for."""
    return f"ephemeral:{request_id}"


async def rebind_legacy_keys(db: asyncpg.Pool, public_key: PublicKey) -> int:
    """Bind every version-1 key (bound to its row only) to its row's current base URL; returns how many.

    Safe with several replicas starting at once: a row changes only while it still holds the bytes read.
    """
    rows = await db.fetch(
        "SELECT id, base_url, sealed_key FROM api_models WHERE get_byte(sealed_key, 0) = $1", LEGACY_VERSION
    )
    count = 0
    for row in rows:
        legacy = SealedSecret.from_bytes(bytes(row["sealed_key"]))
        if legacy.version != LEGACY_VERSION:
            continue
        bound = rebind_legacy(legacy, public_key=public_key, row=str(row["id"]), base_url=row["base_url"])
        result = await db.execute(
            "UPDATE api_models SET sealed_key = $2 WHERE id = $1 AND sealed_key = $3",
            row["id"],
            bound.to_bytes(),
            bytes(row["sealed_key"]),
        )
        count += result.endswith(" 1")
    if count:
        log.info("bound %d stored provider key(s) to their base URLs", count)
    return count
