"""Cut secrets out of what a provider sends back: some providers echo the key, or the whole request, in errors.

The stored key is masked wherever it appears. Error bodies (relayed before the first byte, or in-band during a
stream) lose more: every ``Bearer ...`` or ``sk-...`` token the request carried upstream (a client may have pasted
a key into a message), and any token of those shapes at all, since a provider's error has no reason to hold one.
"""

from __future__ import annotations

import json
import re
from functools import cached_property

MASK = "[redacted]"
_MASK = MASK.encode()
# Bearer tokens (RFC 6750 b64token) and OpenAI-style keys; short runs are words ("sk-learn"), not keys.
_SECRET = re.compile(rb"(?<=[Bb]earer )[A-Za-z0-9\-._~+/]{8,}=*|(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{8,}")


class SecretMask:
    """The secrets of one upstream request, and how to mask them in what comes back."""

    def __init__(self, api_key: str, *, carried: tuple[bytes, ...] = ()) -> None:
        self._key = api_key.encode()
        self._carried = carried  # what went upstream besides the key (the body); scanned only if an error comes

    @cached_property
    def _secrets(self) -> tuple[bytes, ...]:
        found = {m.group() for blob in self._carried for m in _SECRET.finditer(blob)}
        if self._key:
            found.add(self._key)
        # each as sent and as a JSON string escapes it; longest first, so no shorter secret splits a longer one
        spelled = found | {json.dumps(s.decode("utf-8", "replace"))[1:-1].encode() for s in found}
        return tuple(sorted(spelled, key=len, reverse=True))

    def key(self, data: bytes) -> bytes:
        """``data`` with the stored key masked: cheap enough for every streamed chunk."""
        return data.replace(self._key, _MASK) if self._key and self._key in data else data

    def error(self, data: bytes) -> bytes:
        """An error body with every secret the request carried, and anything shaped like a key, masked."""
        for secret in self._secrets:
            data = data.replace(secret, _MASK)
        return _SECRET.sub(_MASK, data)

    def text(self, text: str) -> str:
        return self.error(text.encode()).decode("utf-8", "replace")
