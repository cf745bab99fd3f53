"""Envelope encryption of provider API keys: the API seals them, only remote workers can open them.

    seal(secret, public_key, binding)
        data key     32 random bytes, fresh per seal
        ciphertext   AES-256-GCM(data key, fresh 12-byte nonce, secret, associated data = binding)
        wrapped key  ephemeral X25519 public key || AES-256-GCM(wrapping key, data key), where the wrapping key
                     = HKDF-SHA256(X25519(ephemeral, workers' public key), info = purpose + binding)

The API holds only the workers' public key, so it can store a key but never read one back. Remote workers hold
the private keys (the current one and, during a rotation, the previous ones), picked by ``SealedSecret.key_id``.
The binding is bound into both layers. Version 2 binds a key to its row **and the base URL it may be sent to**
(``key_binding``), so a sealed secret copied onto another row, or sent with another URL, does not open.
Version 1 (before keys were bound to URLs) bound the row alone; the API re-binds such rows when it starts by
sealing the whole version-1 secret inside a version-3 one bound like version 2 (``rebind_legacy``: the public
key is enough), which ``open_bound`` unwraps, and ``bodhi keys rotate`` flattens into a plain version 2.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bodhi_shared.errors import BodhiError

PRIVATE_KEY_FILE = "worker_private_key.pem"
PUBLIC_KEY_FILE = "worker_public_key.pem"

LEGACY_VERSION = 1  # bound to the row only
_VERSION = 2  # bound to the row and the base URL
REBOUND_VERSION = 3  # bound like version 2; the plaintext is a whole version-1 secret (``rebind_legacy``)
_VERSIONS = (LEGACY_VERSION, _VERSION, REBOUND_VERSION)
_KEY_BYTES = 32  # an X25519 key, an AES-256 key
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID_BYTES = 8  # the first 8 bytes of the public key's SHA-256, as 16 hex characters
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_WRAPPED_KEY_BYTES = _KEY_BYTES + _KEY_BYTES + _TAG_BYTES  # ephemeral public key, then the sealed data key
_WRAPPED_KEY_AT = 1 + _KEY_ID_BYTES
_NONCE_AT = _WRAPPED_KEY_AT + _WRAPPED_KEY_BYTES
_CIPHERTEXT_AT = _NONCE_AT + _NONCE_BYTES
_WRAP_INFO = b"bodhi/provider-key/wrap/v1\x00"
_SECRET_AAD = b"bodhi/provider-key/secret/v1\x00"
_ALTERED = "the stored API key (key id {}) does not open: it was sealed for another row or base URL, or altered"
_PEM_BLOCK = re.compile(r"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----", re.DOTALL)


class SecretUnreadable(BodhiError):
    """A sealed secret did not open (unknown key id, another row's, altered); the message never holds key material."""

    code = "secret_unreadable"


class PublicKey:
    """The remote workers' X25519 public key: enough to seal, useless to open."""

    def __init__(self, key: X25519PublicKey) -> None:
        self._key = key
        self.raw = key.public_bytes_raw()
        # Short and stable; stored with each sealed secret so a worker holding several keys picks the right one.
        self.key_id = hashlib.sha256(self.raw).digest()[:_KEY_ID_BYTES].hex()

    @classmethod
    def load(cls, text: str) -> PublicKey:
        """Read a PEM ``PUBLIC KEY`` or the base64 of the 32 raw bytes."""
        key = _read_key(text, serialization.load_pem_public_key, X25519PublicKey.from_public_bytes)
        if not isinstance(key, X25519PublicKey):
            raise ValueError("not an X25519 public key (PEM, or base64 of its 32 raw bytes, expected)")
        return cls(key)

    def to_pem(self) -> str:
        pem = self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return pem.decode()

    def to_base64(self) -> str:
        return base64.b64encode(self.raw).decode()

    def __repr__(self) -> str:
        return f"PublicKey(key_id={self.key_id!r})"


class PrivateKey:
    """A remote workers' X25519 private key. Its ``repr`` shows only the key id."""

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key
        self.public_key = PublicKey(key.public_key())
        self.key_id = self.public_key.key_id

    @classmethod
    def load(cls, text: str) -> PrivateKey:
        """Read a PEM ``PRIVATE KEY`` (PKCS#8, unencrypted) or the base64 of the 32 raw bytes."""
        key = _read_key(
            text, partial(serialization.load_pem_private_key, password=None), X25519PrivateKey.from_private_bytes
        )
        if not isinstance(key, X25519PrivateKey):
            raise ValueError("not an X25519 private key (PEM, or base64 of its 32 raw bytes, expected)")
        return cls(key)

    def to_pem(self) -> str:
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return pem.decode()

    def __repr__(self) -> str:
        return f"PrivateKey(key_id={self.key_id!r})"


def _read_key(text: str, from_pem: Callable[[bytes], object], from_raw: Callable[[bytes], object]) -> object:
    """The key in ``text`` (PEM, or base64 raw bytes), or None: a parser's error might quote key bytes."""
    with contextlib.suppress(ValueError, TypeError, UnsupportedAlgorithm):
        if "-----BEGIN" in text:
            return from_pem(text.encode())
        return from_raw(base64.b64decode(text.strip(), validate=True))
    return None


Keyring = Mapping[str, PrivateKey]
"""Private keys by key id: what a worker opens sealed secrets with."""


def keyring(*private_keys: PrivateKey) -> dict[str, PrivateKey]:
    """Index private keys by their key id."""
    return {key.key_id: key for key in private_keys}


def generate_key_pair() -> tuple[PrivateKey, PublicKey]:
    """A fresh workers' key pair."""
    private_key = PrivateKey(X25519PrivateKey.generate())
    return private_key, private_key.public_key


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedSecret:
    """A provider API key as stored (one BYTEA column) and carried in job payloads, via ``to_bytes()``.

    Layout (every version): version (1 byte) | key id (8) | wrapped data key (80) | nonce (12) | ciphertext
    (the rest). The versions differ in what the binding covers (see the module's docstring).
    """

    key_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes
    version: int = _VERSION

    def __post_init__(self) -> None:
        shape = (len(self.wrapped_key), len(self.nonce))
        if not _KEY_ID.fullmatch(self.key_id) or shape != (_WRAPPED_KEY_BYTES, _NONCE_BYTES):
            raise ValueError("malformed sealed secret")

    def to_bytes(self) -> bytes:
        return bytes([self.version]) + bytes.fromhex(self.key_id) + self.wrapped_key + self.nonce + self.ciphertext

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedSecret:
        if len(data) < _CIPHERTEXT_AT + _TAG_BYTES or data[0] not in _VERSIONS:
            raise SecretUnreadable("the stored API key is not a sealed secret this version of Bodhi can read")
        return cls(
            key_id=data[1:_WRAPPED_KEY_AT].hex(),
            wrapped_key=data[_WRAPPED_KEY_AT:_NONCE_AT],
            nonce=data[_NONCE_AT:_CIPHERTEXT_AT],
            ciphertext=data[_CIPHERTEXT_AT:],
            version=data[0],
        )


def key_binding(row: str, base_url: str) -> str:
    """What a version-2 secret is bound to: the row that holds it and the only base URL it may be sent to."""
    return f"{row}\n{base_url}"


def seal(secret: str, *, public_key: PublicKey, binding: str, version: int = _VERSION) -> SealedSecret:
    """Encrypt ``secret`` for the workers holding ``public_key``'s private key, bound to ``binding``
    (``key_binding(row, base_url)``)."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, secret.encode(), _bound(_SECRET_AAD, version, binding))
    wrapped_key = _wrap(data_key, public_key, _bound(_WRAP_INFO, version, binding))
    return SealedSecret(
        key_id=public_key.key_id, wrapped_key=wrapped_key, nonce=nonce, ciphertext=ciphertext, version=version
    )


def open_sealed(sealed: SealedSecret, *, private_keys: Keyring, binding: str) -> str:
    """The plaintext of ``sealed``; ``SecretUnreadable`` if no key fits, the binding differs or a byte was altered."""
    data_key = _unwrap(sealed, private_keys, _bound(_WRAP_INFO, sealed.version, binding))
    aad = _bound(_SECRET_AAD, sealed.version, binding)
    try:
        return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, aad).decode()
    except (InvalidTag, ValueError):
        raise SecretUnreadable(_ALTERED.format(sealed.key_id)) from None


def rewrap(sealed: SealedSecret, *, private_keys: Keyring, new_public_key: PublicKey, binding: str) -> SealedSecret:
    """``sealed`` with its data key wrapped for ``new_public_key`` (key rotation); the secret is never decrypted."""
    info = _bound(_WRAP_INFO, sealed.version, binding)
    wrapped_key = _wrap(_unwrap(sealed, private_keys, info), new_public_key, info)
    return dataclasses.replace(sealed, key_id=new_public_key.key_id, wrapped_key=wrapped_key)


def rebind_legacy(legacy: SealedSecret, *, public_key: PublicKey, row: str, base_url: str) -> SealedSecret:
    """A version-1 secret (bound to ``row`` only) sealed whole inside a version-3 one bound to ``row`` and
    ``base_url``: needs only the public key, so the API can do it; the provider key stays sealed throughout."""
    if legacy.version != LEGACY_VERSION:
        raise ValueError("only a version-1 secret needs re-binding")
    inner = base64.b64encode(legacy.to_bytes()).decode()
    return seal(inner, public_key=public_key, binding=key_binding(row, base_url), version=REBOUND_VERSION)


def open_bound(sealed: SealedSecret, *, private_keys: Keyring, row: str, base_url: str) -> str:
    """The provider key of ``row``, only if it was sealed for ``base_url``; a bare version-1 secret is refused."""
    if sealed.version == LEGACY_VERSION:
        raise SecretUnreadable(
            "the stored API key is not yet bound to its base URL: start the upgraded API once (it re-binds old "
            "keys), or run `bodhi keys rotate`"
        )
    opened = open_sealed(sealed, private_keys=private_keys, binding=key_binding(row, base_url))
    if sealed.version != REBOUND_VERSION:
        return opened
    try:
        legacy = SealedSecret.from_bytes(base64.b64decode(opened, validate=True))
    except ValueError:
        raise SecretUnreadable(_ALTERED.format(sealed.key_id)) from None
    if legacy.version != LEGACY_VERSION:
        raise SecretUnreadable(_ALTERED.format(sealed.key_id))
    return open_sealed(legacy, private_keys=private_keys, binding=row)


def key_hint(secret: str) -> str:
    """A masked hint for display, like ``sk-...abcd``; a short key shows at most its last 2 characters."""
    if len(secret) >= 12:
        return f"{secret[:3]}...{secret[-4:]}"
    if len(secret) >= 8:
        return f"...{secret[-2:]}"
    return "****"


def _bound(label: bytes, version: int, binding: str) -> bytes:
    """Associated data (or HKDF info) for a secret of ``version`` bound to ``binding``; from version 2 on it covers
    the version too, so a secret cannot be passed off as another version."""
    if version == LEGACY_VERSION:
        return label + binding.encode()
    return label + bytes([version]) + binding.encode()


def _wrap(data_key: bytes, public_key: PublicKey, info: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes_raw()
    key, nonce = _wrapping_key(ephemeral.exchange(public_key._key), ephemeral_raw, public_key.raw, info)
    return ephemeral_raw + AESGCM(key).encrypt(nonce, data_key, None)


def _unwrap(sealed: SealedSecret, private_keys: Keyring, info: bytes) -> bytes:
    private_key = private_keys.get(sealed.key_id)
    if private_key is None:
        raise SecretUnreadable(f"no worker private key with id {sealed.key_id} is loaded to open the stored API key")
    ephemeral_raw, sealed_key = sealed.wrapped_key[:_KEY_BYTES], sealed.wrapped_key[_KEY_BYTES:]
    try:
        shared = private_key._key.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        key, nonce = _wrapping_key(shared, ephemeral_raw, private_key.public_key.raw, info)
        return AESGCM(key).decrypt(nonce, sealed_key, None)
    except (InvalidTag, ValueError):  # ValueError: an altered ephemeral key of low order
        raise SecretUnreadable(_ALTERED.format(sealed.key_id)) from None


def _wrapping_key(shared: bytes, ephemeral_raw: bytes, recipient_raw: bytes, info: bytes) -> tuple[bytes, bytes]:
    # Salting with both public keys binds the wrap to this exchange; the info binds it to its purpose and binding.
    hkdf = HKDF(hashes.SHA256(), _KEY_BYTES + _NONCE_BYTES, ephemeral_raw + recipient_raw, info)
    okm = hkdf.derive(shared)
    # Each wrapping key encrypts exactly once, so deriving its nonce alongside it is safe (as HPKE does).
    return okm[:_KEY_BYTES], okm[_KEY_BYTES:]


def write_key_pair(directory: Path) -> tuple[Path, Path]:
    """Write a fresh pair as ``(private, public)`` PEM files; the private one is 0600 and never overwritten.

    Raises ``FileExistsError`` if ``directory`` already holds a private key: replacing it would lose every
    secret sealed for it.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_key, public_key = generate_key_pair()
    private_path, public_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    _create_private_file(private_path, private_key.to_pem().encode())
    public_path.write_text(public_key.to_pem())
    return private_path, public_path


def load_or_create_key_pair(directory: Path) -> tuple[PrivateKey, PublicKey]:
    """The embedded default's pair under ``directory``, created on first use."""
    private_path = directory / PRIVATE_KEY_FILE
    if not private_path.exists():
        with contextlib.suppress(FileExistsError):  # another process created it meanwhile: use that one
            write_key_pair(directory)
    private_key = PrivateKey.load(private_path.read_text())
    return private_key, private_key.public_key


def load_private_keys(*, text: str | None = None, paths: Iterable[Path] = ()) -> dict[str, PrivateKey]:
    """The workers' keyring from an env var's value and/or key files, each holding one or more keys.

    Keys are PEM blocks (``\\n`` escapes allowed, for env vars) or base64 raw keys separated by whitespace or
    commas: the current key and, during a rotation, the previous ones. Raises ``ValueError`` if none is found.
    """
    texts = ([text.replace("\\n", "\n")] if text else []) + [Path(path).read_text() for path in paths]
    items = [item for t in texts for item in (_PEM_BLOCK.findall(t) if "-----BEGIN" in t else re.split(r"[\s,]+", t))]
    keys = [PrivateKey.load(item) for item in items if item]
    if not keys:
        raise ValueError("no worker private key configured")
    return keyring(*keys)


def _create_private_file(path: Path, data: bytes) -> None:
    """Write under a temporary name, then link into place, so no reader ever sees half a key."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # Created with its final mode: a private key is never readable by others, not even briefly.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb", buffering=0) as file:
            file.write(data)
            os.fsync(file.fileno())
        os.link(temporary, path)  # unlike a rename, fails if ``path`` exists: a key is never replaced
    finally:
        temporary.unlink(missing_ok=True)
