"""The API token format: ``bodhiapp_`` + 32 random bytes in base64url + a 6-character checksum.

The checksum lets garbage be refused without a database read. Only ``token_hash`` (SHA-256) and
``lookup_prefix`` are stored; the token itself is shown once, at creation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "bodhiapp_"
_BODY_LEN = 43  # base64url of 32 bytes, unpadded
_CHECKSUM_LEN = 6
TOKEN_LEN = len(PREFIX) + _BODY_LEN + _CHECKSUM_LEN
LOOKUP_PREFIX_LEN = 8


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _checksum(body: str) -> str:
    return _b64(hashlib.sha256(body.encode()).digest())[:_CHECKSUM_LEN]


@dataclass(frozen=True, slots=True)
class ParsedToken:
    lookup_prefix: str
    token_hash: bytes


def new_token() -> str:
    body = _b64(secrets.token_bytes(32))
    return f"{PREFIX}{body}{_checksum(body)}"


def parse_token(token: str) -> ParsedToken | None:
    """The stored form of a well-formed token; None for anything that cannot be one of ours."""
    if len(token) != TOKEN_LEN or not token.startswith(PREFIX):
        return None
    body, checksum = token[len(PREFIX) : -_CHECKSUM_LEN], token[-_CHECKSUM_LEN:]
    if not hmac.compare_digest(_checksum(body), checksum):
        return None
    return ParsedToken(lookup_prefix=body[:LOOKUP_PREFIX_LEN], token_hash=hash_token(token))


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
