"""A chat-completions stream, chunk by chunk, as an Anthropic Messages event stream.

    message_start                                  on the first chunk: the message, no content, usage zeros
    content_block_start (text), content_block_delta (text_delta)..., content_block_stop
    content_block_start (tool_use), content_block_delta (input_json_delta)..., content_block_stop
    message_delta                                  stop_reason, stop_sequence, usage
    message_stop

Anthropic blocks come one at a time: a block stops when the next one starts. A provider that interleaves the
argument pieces of parallel tool calls still gets each piece to its block's ``index`` (the SDKs accumulate by
index), after that block's stop. Input tokens are not known before the end of a chat stream, so ``message_start``
says 0 and ``message_delta`` carries the real count (the SDKs take a ``message_delta``'s ``input_tokens``).
"""

from __future__ import annotations

from typing import Any

from bodhi_shared.api_formats import anthropic_output as out
from bodhi_shared.api_formats.chat import ToolCallPiece, first_choice, text_of, tool_call_pieces, usage_of
from bodhi_shared.api_formats.fields import as_object
from bodhi_shared.api_formats.sse import frame


class MessagesStream:
    def __init__(self, *, model: str, request_id: str, request: dict[str, Any]) -> None:
        self._model = model
        self._request_id = request_id
        self._started = False
        self._ended = False
        self._blocks = 0  # blocks started so far; the next one's index
        self._open: int | None = None  # index of the block not yet stopped
        self._text_block: int | None = None  # index of the open text block, if the open block is text
        self._tools: dict[int, tuple[int, str | None]] = {}  # a tool call's chunk key -> (block index, its id)
        self._choice: dict[str, Any] = {}  # the last choice with a finish reason
        self._usage: Any = None

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._ended:
            return b""
        frames = self._start()
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choice = first_choice(chunk)
        if choice is None:
            return frames
        delta = as_object(choice.get("delta"))
        if text := text_of(delta):
            frames += self._text(text)
        for piece in tool_call_pieces(delta):
            frames += self._tool_call(piece)
        if choice.get("finish_reason") is not None:
            self._choice = choice
        return frames

    def finish(self, usage: dict[str, Any] | None) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        frames = self._start() + self._stop_block()
        reason, sequence = out.stop_reason(self._choice, used_tools=bool(self._tools))
        numbers = out.message_usage(usage_of(usage if usage is not None else self._usage))
        return (
            frames
            + frame(
                "message_delta",
                {"delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": numbers},
            )
            + frame("message_stop", {})
        )

    def error(self, status: int, error: dict[str, Any]) -> bytes:
        """An ``error`` event, as Anthropic sends when a stream fails after its 200; nothing follows it."""
        if self._ended:
            return b""
        self._ended = True
        return frame("error", out.error_body(status, error))

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": out.message_id(self._request_id),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return frame("message_start", {"message": message})

    def _start_block(self, block: dict[str, Any]) -> tuple[int, bytes]:
        frames = self._stop_block()
        index = self._blocks
        self._blocks += 1
        self._open = index
        return index, frames + frame("content_block_start", {"index": index, "content_block": block})

    def _stop_block(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open, self._text_block = self._open, None, None
        return frame("content_block_stop", {"index": index})

    def _text(self, text: str) -> bytes:
        frames = b""
        if self._text_block is None:
            self._text_block, frames = self._start_block({"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        return frames + frame("content_block_delta", {"index": self._text_block, "delta": delta})

    def _tool_call(self, piece: ToolCallPiece) -> bytes:
        frames = b""
        index, call_id = self._tools.get(piece.key, (None, None))
        if index is None or (piece.call_id and call_id and piece.call_id != call_id):
            tool_id = out.tool_use_id(piece.call_id, request_id=self._request_id, index=self._blocks)
            block = {"type": "tool_use", "id": tool_id, "name": piece.name, "input": {}}
            index, frames = self._start_block(block)
            self._tools[piece.key] = (index, piece.call_id)
        elif piece.call_id and not call_id:
            self._tools[piece.key] = (index, piece.call_id)
        if not piece.arguments:
            return frames
        delta = {"type": "input_json_delta", "partial_json": piece.arguments}
        return frames + frame("content_block_delta", {"index": index, "delta": delta})
