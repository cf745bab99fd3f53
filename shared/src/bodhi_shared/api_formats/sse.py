"""Server-sent event frames of the Responses and Messages streams.

Both formats name each event twice, in the ``event:`` line and in the data's ``type``; clients dispatch on either
(the Anthropic SDK on the line, the OpenAI SDK on the data), so every frame carries both.
"""

from __future__ import annotations

import json
from typing import Any


def frame(event: str, data: dict[str, Any]) -> bytes:
    """One frame, ``event: <event>\\ndata: <json>\\n\\n``; ``data`` gets ``"type": event`` first."""
    return b"event: " + event.encode() + b"\ndata: " + to_json({"type": event, **data}) + b"\n\n"


def to_json(value: Any) -> bytes:
    """Compact JSON in UTF-8, non-ASCII kept as is (a third of the bytes of ``\\uXXXX`` escapes for CJK text).

    A model's output can hold a lone surrogate (a provider's JSON may escape one), which UTF-8 cannot encode:
    then, and only then, the text is escaped to ASCII, which any JSON reader takes.
    """
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()
