"""``bodhi keys rotate``: re-wrap every stored provider key under a new worker key pair.

Safe to interrupt and to re-run: each row is re-wrapped in its own statement and stays readable by a worker
holding either the old or the new private key; the old private key is kept (renamed with its key id) until the
operator removes it once every worker runs with the new one.

    1. write the new pair as worker_private_key.next.pem / worker_public_key.next.pem (or reuse them); workers
       find the .next private key among their key files as soon as a row names its key id
    2. re-wrap each api_models row whose key id is not the new one; a key stored before keys were bound to their
       base URLs (bare, or re-bound by the API inside a version-2 envelope) is opened and sealed afresh for its
       row and base URL instead: the one case where rotation decrypts a provider key, in this process only
    3. retire the old private key as worker_private_key.<key id>.pem, promote the new pair to the current names
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import asyncpg

from bodhi_shared.crypto import (
    LEGACY_VERSION,
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    REBOUND_VERSION,
    PrivateKey,
    SealedSecret,
    SecretUnreadable,
    key_binding,
    open_bound,
    open_sealed,
    rewrap,
    seal,
    write_key_pair,
)
from bodhi_shared.migrate import migrate
from bodhi_shared.worker_keys import KEYS_DIR, WorkerKeyMissing, WorkerPrivateKeySettings

DatabaseUrl = Callable[[], AbstractContextManager[str]]
NEXT = ".next"


def add_parser(sub: Any, *, database_url: DatabaseUrl) -> None:
    keys = sub.add_parser("keys", help="manage the remote workers' key pair").add_subparsers(dest="verb", required=True)
    rotate = keys.add_parser("rotate", help="re-wrap every stored provider key under a new key pair")
    rotate.set_defaults(handler=lambda args: run_rotate(args, database_url))


def run_rotate(args: argparse.Namespace, database_url: DatabaseUrl) -> int:
    settings = WorkerPrivateKeySettings()
    key_dir = settings.home / KEYS_DIR
    new_key = next_key_pair(key_dir)
    try:
        old_keys = settings.load_worker_keyring()
    except WorkerKeyMissing as exc:
        raise SystemExit(exc.message) from None
    with database_url() as url:
        rewrapped, unreadable = asyncio.run(rewrap_all(url, old_keys=old_keys, new_key=new_key))
    promote(key_dir, new_key)
    print(f"re-wrapped {rewrapped} key(s) under key id {new_key.key_id}; the previous private key is kept")
    for row_id in unreadable:
        print(f"warning: API model {row_id} holds a key no worker key opens; enter its key again", file=sys.stderr)
    return 0


def _next_paths(key_dir: Path) -> tuple[Path, Path]:
    return key_dir / f"worker_private_key{NEXT}.pem", key_dir / f"worker_public_key{NEXT}.pem"


def next_key_pair(key_dir: Path) -> PrivateKey:
    private_path, public_path = _next_paths(key_dir)
    if not private_path.exists():  # else an interrupted rotation left one: finish with that same pair
        staging = key_dir / "staging"
        shutil.rmtree(staging, ignore_errors=True)
        staged_private, staged_public = write_key_pair(staging)
        os.replace(staged_public, public_path)
        os.replace(staged_private, private_path)
        staging.rmdir()
    return PrivateKey.load(private_path.read_text())


async def rewrap_all(url: str, *, old_keys: dict[str, PrivateKey], new_key: PrivateKey) -> tuple[int, list[str]]:
    """Re-wrap every row not yet under ``new_key``; returns the count and the ids of rows that do not open."""
    keyring = {**old_keys, new_key.key_id: new_key}
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        count, unreadable = 0, []
        for row in await conn.fetch("SELECT id, base_url, sealed_key FROM api_models"):
            row_id, base_url = str(row["id"]), row["base_url"]
            try:
                sealed = SealedSecret.from_bytes(bytes(row["sealed_key"]))
                if sealed.key_id == new_key.key_id and sealed.version not in (LEGACY_VERSION, REBOUND_VERSION):
                    continue
                fresh = _rotated(sealed, keyring, new_key, row_id=row_id, base_url=base_url)
            except SecretUnreadable:  # damaged or sealed for another row: nothing to save, the rest goes on
                unreadable.append(str(row["id"]))
                continue
            # Only if unchanged meanwhile: an edit that stored a new key wins over this rotation's copy.
            result = await conn.execute(
                "UPDATE api_models SET sealed_key = $2 WHERE id = $1 AND sealed_key = $3",
                row["id"],
                fresh.to_bytes(),
                bytes(row["sealed_key"]),
            )
            count += result.endswith(" 1")
        return count, unreadable
    finally:
        await conn.close()


def _rotated(
    sealed: SealedSecret, keyring: dict[str, PrivateKey], new_key: PrivateKey, *, row_id: str, base_url: str
) -> SealedSecret:
    """``sealed`` under ``new_key``: re-wrapped, or, for a key from before URL binding, sealed afresh."""
    binding = key_binding(row_id, base_url)
    if sealed.version == LEGACY_VERSION:
        secret = open_sealed(sealed, private_keys=keyring, binding=row_id)
    elif sealed.version == REBOUND_VERSION:
        secret = open_bound(sealed, private_keys=keyring, row=row_id, base_url=base_url)
    else:
        return rewrap(sealed, private_keys=keyring, new_public_key=new_key.public_key, binding=binding)
    return seal(secret, public_key=new_key.public_key, binding=binding)


def promote(key_dir: Path, new_key: PrivateKey) -> None:
    """Retire the current private key under its key id, then move the new pair to the current names."""
    current = key_dir / PRIVATE_KEY_FILE
    if current.exists():
        old = PrivateKey.load(current.read_text())
        if old.key_id != new_key.key_id:
            os.replace(current, key_dir / f"worker_private_key.{old.key_id}.pem")
    private_path, public_path = _next_paths(key_dir)
    os.replace(public_path, key_dir / PUBLIC_KEY_FILE)
    os.replace(private_path, current)
