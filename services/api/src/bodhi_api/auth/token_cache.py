"""A short-lived cache of verified API tokens, so the hot path skips a database read per request.

A change of a token or of a user's role clears the cache on every replica at once
(``Resources.credentials_changed`` publishes on ``RedisKeys.api_control``); entries also expire after ``TTL_S``,
so even a lost message delays nothing by more than half a second. Failures are never cached, so a new token
works at once.
"""

from __future__ import annotations

import time

from bodhi_api.auth.tokens import VerifiedToken

TTL_S = 0.5
MAX_ENTRIES = 10_000


class TokenCache:
    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, VerifiedToken]] = {}

    def get(self, token_hash: bytes) -> VerifiedToken | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        expires_at, verified = entry
        if time.monotonic() >= expires_at:
            del self._entries[token_hash]
            return None
        return verified

    def clear(self) -> None:
        self._entries.clear()

    def put(self, token_hash: bytes, verified: VerifiedToken) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()  # rare, and always safe: the next requests just read the database
        self._entries[token_hash] = (time.monotonic() + TTL_S, verified)
