"""Where the remote workers' key pair comes from.

The API is given only the PUBLIC key (it seals provider keys and can never open them); remote workers are
given the PRIVATE keys (the current one and, during a rotation, the previous ones). Both default to the files
the embedded default keeps under ``BODHI_HOME/keys``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

from pydantic import SecretStr

from bodhi_shared.crypto import (
    PUBLIC_KEY_FILE,
    PrivateKey,
    PublicKey,
    SealedSecret,
    SecretUnreadable,
    load_private_keys,
    open_bound,
)
from bodhi_shared.errors import ServiceUnavailable
from bodhi_shared.settings import BodhiSettings

log = logging.getLogger(__name__)

KEYS_DIR = "keys"
# The current private key is worker_private_key.pem; retired ones keep the same stem with their key id.
PRIVATE_KEY_GLOB = "worker_private_key*.pem"


class WorkerKeyMissing(ServiceUnavailable):
    """The workers' public key (API) or private keys (remote worker) are not where the settings say.

    At start-up this ends the process with its message; on a request (the key file removed since) it is a 503.
    """

    code = "worker_key_missing"


class WorkerPublicKeySettings(BodhiSettings):
    worker_public_key: str | None = None  # PEM, or base64 of the raw 32 bytes
    worker_public_key_file: Path | None = None

    def load_worker_public_key(self) -> PublicKey:
        """Read at each use, so a rotated key file is picked up without a restart."""
        if self.worker_public_key:
            return PublicKey.load(self.worker_public_key.replace("\\n", "\n"))
        path = self.worker_public_key_file or self.home / KEYS_DIR / PUBLIC_KEY_FILE
        if not path.exists():
            raise WorkerKeyMissing(
                f"No worker public key: set BODHI_WORKER_PUBLIC_KEY or BODHI_WORKER_PUBLIC_KEY_FILE ({path} is missing)"
            )
        return PublicKey.load(path.read_text())


class WorkerPrivateKeySettings(BodhiSettings):
    worker_private_keys: SecretStr | None = None  # one or more PEM blocks or base64 raw keys
    worker_private_key_files: str | None = None  # comma-separated paths

    def private_key_paths(self) -> list[Path]:
        if self.worker_private_key_files:
            return [Path(p.strip()) for p in self.worker_private_key_files.split(",") if p.strip()]
        if self.worker_private_keys:
            return []
        return sorted((self.home / KEYS_DIR).glob(PRIVATE_KEY_GLOB))

    def load_worker_keyring(self) -> dict[str, PrivateKey]:
        text = self.worker_private_keys.get_secret_value() if self.worker_private_keys else None
        try:
            return load_private_keys(text=text, paths=self.private_key_paths())
        except ValueError:
            raise WorkerKeyMissing(
                "No worker private key: set BODHI_WORKER_PRIVATE_KEYS or BODHI_WORKER_PRIVATE_KEY_FILES "
                f"(nothing found under {self.home / KEYS_DIR})"
            ) from None


class WorkerKeyring:
    """The private keys a remote worker holds; re-read once when a secret names a key id it lacks.

    Opened keys are remembered (bounded, least recently used first out) by their exact sealed bytes, row and base
    URL, so the X25519 exchange runs once per stored key rather than once per request; a re-keyed row has new
    bytes, and a key asked for with another URL than it was sealed for is opened (and refused) afresh.
    """

    MEMO_SIZE = 1024

    def __init__(self, settings: WorkerPrivateKeySettings) -> None:
        self._settings = settings
        try:
            self._keys = settings.load_worker_keyring()
        except WorkerKeyMissing as exc:  # at start-up: end the process with the message, not a traceback
            raise SystemExit(exc.message) from None
        self._opened: OrderedDict[tuple[str, str, bytes], str] = OrderedDict()

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def open(self, sealed: bytes, *, row: str, base_url: str) -> str:
        """The provider key sealed for ``row``, only when it was sealed for ``base_url`` too."""
        memo_key = (row, base_url, sealed)
        if (opened := self._opened.get(memo_key)) is not None:
            self._opened.move_to_end(memo_key)
            return opened
        opened = self._open(sealed, row=row, base_url=base_url)
        self._opened[memo_key] = opened
        if len(self._opened) > self.MEMO_SIZE:
            self._opened.popitem(last=False)
        return opened

    def _open(self, sealed: bytes, *, row: str, base_url: str) -> str:
        secret = SealedSecret.from_bytes(sealed)
        if secret.key_id not in self._keys:
            log.info("key id %s not held; re-reading the worker keys", secret.key_id)
            self._keys = self._settings.load_worker_keyring()
        if secret.key_id not in self._keys:
            raise SecretUnreadable(f"No worker key with id {secret.key_id}: give this worker that private key.")
        return open_bound(secret, private_keys=self._keys, row=row, base_url=base_url)
