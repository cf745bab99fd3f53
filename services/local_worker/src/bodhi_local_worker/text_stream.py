"""A sequence's text as its tokens come: whole UTF-8 characters only, and never past a stop string.

A token may end inside a character (byte-level vocabularies split them), and text that could be the start of a
stop string is held back until the next tokens tell whether it is one: ``feed`` returns only text that is sure to
be part of the answer, ``flush`` the rest once the sequence ends without meeting a stop string.
"""

from __future__ import annotations

import codecs


class TextStream:
    def __init__(self, stops: list[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self._text = ""
        self._sent = 0  # characters of _text handed out
        self.stopped = False  # a stop string was met: the answer ends before it

    def feed(self, data: bytes) -> str:
        """Add one token's bytes; returns the text that can be sent now (empty if none)."""
        if self.stopped:
            return ""
        self._text += self._decoder.decode(data)
        if not self._stops:
            return self._take(len(self._text))
        start = max(0, self._sent - max(len(stop) for stop in self._stops) + 1)
        found = [index for stop in self._stops if (index := self._text.find(stop, start)) >= 0]
        if found:
            self.stopped = True
            return self._take(min(found))
        return self._take(len(self._text) - self._held_back())

    def flush(self) -> str:
        """The text still held back, at the end of a sequence that met no stop string."""
        if self.stopped:
            return ""
        self._text += self._decoder.decode(b"", final=True)
        return self._take(len(self._text))

    @property
    def text(self) -> str:
        """Everything handed out so far."""
        return self._text[: self._sent]

    def _held_back(self) -> int:
        """The length of the longest end of the text that is the start of a stop string."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._text) - self._sent), longest, -1):
                if self._text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def _take(self, end: int) -> str:
        end = max(end, self._sent)
        piece = self._text[self._sent : end]
        self._sent = end
        return piece
