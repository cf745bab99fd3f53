"""``bodhi keys create`` writes a worker key pair; ``bodhi keys rotate`` re-wraps every stored provider key under a
new one.

``create`` is the first step of a team deployment: the public key goes to the API (``BODHI_WORKER_PUBLIC_KEY_FILE``),
the private key to the remote workers only (``BODHI_WORKER_PRIVATE_KEY_FILES``). It never replaces a pair without
``--force``, and even then keeps the old private key as ``worker_private_key.<key id>.pem``: provider keys sealed
for it would otherwise be lost.

``rotate``:

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
from bodhi_shared.settings import BodhiSettings
from bodhi_shared.worker_keys import KEYS_DIR, WorkerKeyMissing, WorkerPrivateKeySettings

DatabaseUrl = Callable[[], AbstractContextManager[str]]
NEXT = ".next"


def add_parser(sub: Any, *, database_url: DatabaseUrl) -> None:
    keys = sub.add_parser("keys", help="manage the remote workers' key pair").add_subparsers(dest="verb", required=True)
    create = keys.add_parser("create", help="write a new key pair: the public key for the API, the private for workers")
    create.add_argument("--dir", type=Path, metavar="D", help="where to write it (default: BODHI_HOME/keys)")
    create.add_argument(
        "--force", action="store_true", help="replace a pair already there (its private key is kept, renamed)"
    )
    create.set_defaults(handler=run_create)
    rotate = keys.add_parser("rotate", help="re-wrap every stored provider key under a new key pair")
    rotate.set_defaults(handler=lambda args: run_rotate(args, database_url))


def run_create(args: argparse.Namespace) -> int:
    key_dir: Path = (args.dir or BodhiSettings().home / KEYS_DIR).absolute()  # printed for env vars: absolute
    private_path, public_path = key_dir / PRIVATE_KEY_FILE, key_dir / PUBLIC_KEY_FILE
    existing = [path for path in (private_path, public_path) if path.exists()]
    if existing and not args.force:
        names = " and ".join(str(path) for path in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        raise SystemExit(
            f"{names} already {verb}: replacing a private key loses every provider key sealed for it. "
            "Use `bodhi keys rotate` to change keys, or --force to replace the pair anyway."
        )
    retired = replace_key_pair(key_dir)
    key_id = PrivateKey.load(private_path.read_text()).key_id
    print(f"wrote the private key to {private_path} (mode 0600): give it to the remote workers only, with")
    print(f"  BODHI_WORKER_PRIVATE_KEY_FILES={private_path}")
    print(f"wrote the public key to {public_path} (mode 0644): give it to the API, with")
    print(f"  BODHI_WORKER_PUBLIC_KEY_FILE={public_path}")
    print(f"key id {key_id}")
    if retired is not None:
        print(f"the previous private key is kept as {retired}; delete it once no stored key needs it", file=sys.stderr)
    return 0


def replace_key_pair(key_dir: Path) -> Path | None:
    """Write a fresh pair under ``key_dir``, replacing one already there; returns where its private key went.

    Staged in ``key_dir`` and moved into place, so a reader sees the old pair or the new one, never half a key;
    the modes are set whatever the umask (private 0600, public 0644: it is no secret).
    """
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = key_dir / ".create-staging"
    shutil.rmtree(staging, ignore_errors=True)
    retired: Path | None = None
    try:
        staged_private, staged_public = write_key_pair(staging)
        staged_private.chmod(0o600)
        staged_public.chmod(0o644)
        current = key_dir / PRIVATE_KEY_FILE
        if current.exists():
            try:
                retired = key_dir / f"worker_private_key.{PrivateKey.load(current.read_text()).key_id}.pem"
            except ValueError:  # not a key: kept all the same, under a name the workers' glob does not match
                retired = key_dir / f"{PRIVATE_KEY_FILE}.unreadable"
            os.replace(current, retired)
        os.replace(staged_public, key_dir / PUBLIC_KEY_FILE)
        os.replace(staged_private, current)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # never a stray copy of a private key
    return retired


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
