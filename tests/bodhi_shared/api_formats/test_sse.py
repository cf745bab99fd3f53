"""SSE frames: both names of the event, and JSON that any reader takes."""

from __future__ import annotations

import json

from bodhi_shared.api_formats.sse import frame


def test_a_frame_names_its_event_twice() -> None:
    assert frame("message_stop", {}) == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_text_stays_utf8_and_a_lone_surrogate_is_escaped() -> None:
    assert "wörld".encode() in frame("delta", {"text": "wörld"})
    raw = frame("delta", {"text": "bad \ud800 half"})  # a provider's JSON may escape half a pair
    assert json.loads(raw.split(b"data: ")[1]) == {"type": "delta", "text": "bad \ud800 half"}
