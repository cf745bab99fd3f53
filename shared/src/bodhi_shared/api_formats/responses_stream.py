"""A chat-completions stream, chunk by chunk, as a Responses API event stream.

The events, each with a ``sequence_number`` counted from 0:

    response.created, response.in_progress                       on the first chunk
    response.output_item.added (message)                         text: one message item per run of text
      response.content_part.added, response.output_text.delta...
      response.output_text.done, response.content_part.done
    response.output_item.done
    response.output_item.added (function_call)                   each tool call: its own item
      response.function_call_arguments.delta..., ...done
    response.output_item.done
    response.completed | response.incomplete | response.failed   the whole Response, with usage

A message item closes when a tool call starts (chat providers send text first, then tool calls); tool call items
stay open until the end, because a provider may interleave the argument pieces of parallel calls, and each piece
must still reach its own item. ``response.incomplete`` (not ``response.completed``) ends a response cut short by
``max_output_tokens``, as OpenAI's own stream does.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from bodhi_shared.api_formats import responses_output as out
from bodhi_shared.api_formats.chat import ToolCallPiece, first_choice, text_of, tool_call_pieces, usage_of
from bodhi_shared.api_formats.fields import as_object
from bodhi_shared.api_formats.sse import frame

# An HTTP status of a failure -> the Response error's `code`, one of the few values the Responses API defines.
ERROR_CODES = {400: "invalid_prompt", 429: "rate_limit_exceeded"}


class ResponsesStream:
    """One Responses stream; ``final_response`` holds the whole Response once it has ended."""

    def __init__(self, *, model: str, request_id: str, request: dict[str, Any]) -> None:
        self._request_id = request_id
        self._shell = out.response_shell(request, request_id=request_id, model=model, created_at=int(time.time()))
        self._sequence = 0
        self._started = False
        self._ended = False
        self._output: list[dict[str, Any]] = []  # the Response's output items, by output_index, as they grow
        self._open_message: int | None = None  # output_index of the message item taking text
        self._calls: dict[int, tuple[int, str | None]] = {}  # a tool call's chunk key -> (output_index, its id)
        self._open_calls: list[int] = []
        self._finish_reason: str | None = None
        self._usage: Any = None
        self.final_response: dict[str, Any] | None = None

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
        if isinstance(choice.get("finish_reason"), str):
            self._finish_reason = choice["finish_reason"]
        return frames

    def finish(self, usage: dict[str, Any] | None) -> bytes:
        if self._ended:
            return b""
        frames = self._start()
        status, incomplete_details = out.outcome(self._finish_reason)
        item_status = "incomplete" if status == "incomplete" else "completed"
        frames += self._close_message(item_status)
        for output_index in self._open_calls:
            frames += self._close_call(output_index, item_status)
        self._open_calls = []
        usage_numbers = usage_of(usage if usage is not None else self._usage)
        response = self._response(status, incomplete_details=incomplete_details)
        response["usage"] = out.response_usage(usage_numbers)
        return frames + self._end(f"response.{status}", response)

    def error(self, status: int, error: dict[str, Any]) -> bytes:
        """``response.failed``: the Response so far, its unfinished items ``incomplete``, and the error."""
        if self._ended:
            return b""
        frames = self._start()
        for item in self._output:
            if item["status"] == "in_progress":
                item["status"] = "incomplete"
        response = self._response("failed")
        message = error.get("message")
        response["error"] = {
            "code": ERROR_CODES.get(status, "server_error"),
            "message": message if isinstance(message, str) and message else f"The request failed (HTTP {status}).",
        }
        return frames + self._end("response.failed", response)

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._emit("response.created", response=self._shell) + self._emit(
            "response.in_progress", response=self._shell
        )

    def _end(self, event: str, response: dict[str, Any]) -> bytes:
        self._ended = True
        self.final_response = response
        return self._emit(event, response=response)

    def _response(self, status: str, *, incomplete_details: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            **self._shell,
            "status": status,
            "incomplete_details": incomplete_details,
            "output": copy.deepcopy(self._output),
        }

    def _emit(self, event: str, **fields: Any) -> bytes:
        """The next frame; serialized at once, so that later changes to the items it names do not reach it."""
        data = frame(event, {**fields, "sequence_number": self._sequence})
        self._sequence += 1
        return data

    def _text(self, text: str) -> bytes:
        output_index, frames = self._message_for_text()
        item = self._output[output_index]
        item["content"][0]["text"] += text
        return frames + self._emit(
            "response.output_text.delta",
            item_id=item["id"],
            output_index=output_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _message_for_text(self) -> tuple[int, bytes]:
        """The open message item's output_index, opening one (with its one text part) if none is open."""
        if self._open_message is not None:
            return self._open_message, b""
        output_index = self._open_message = len(self._output)
        item = out.message_item(out.message_id(self._request_id, output_index), None, status="in_progress")
        frames = self._emit("response.output_item.added", output_index=output_index, item=item)
        item["content"] = [out.output_text("")]
        self._output.append(item)
        return output_index, frames + self._emit(
            "response.content_part.added",
            item_id=item["id"],
            output_index=output_index,
            content_index=0,
            part=out.output_text(""),
        )

    def _close_message(self, status: str) -> bytes:
        output_index = self._open_message
        if output_index is None:
            return b""
        self._open_message = None
        item = self._output[output_index]
        item["status"] = status
        part = item["content"][0]
        where = {"item_id": item["id"], "output_index": output_index, "content_index": 0}
        return (
            self._emit("response.output_text.done", **where, text=part["text"], logprobs=[])
            + self._emit("response.content_part.done", **where, part=part)
            + self._emit("response.output_item.done", output_index=output_index, item=item)
        )

    def _tool_call(self, piece: ToolCallPiece) -> bytes:
        frames = b""
        output_index, call_id = self._calls.get(piece.key, (None, None))
        if output_index is None or (piece.call_id and call_id and piece.call_id != call_id):
            # A new key, or a new id under a key already used (a provider that numbers every chunk's calls from 0).
            frames += self._close_message("completed") + self._add_call(piece)
            output_index, call_id = self._calls[piece.key]
        if piece.call_id and not call_id:
            self._calls[piece.key] = (output_index, piece.call_id)
        item = self._output[output_index]
        if piece.name and not item["name"]:
            item["name"] = piece.name  # a provider that sends the name after the id; most send both at once
        if not piece.arguments:
            return frames
        item["arguments"] += piece.arguments
        return frames + self._emit(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=output_index,
            delta=piece.arguments,
        )

    def _add_call(self, piece: ToolCallPiece) -> bytes:
        output_index = len(self._output)
        item = out.function_call_item(
            out.function_call_id(self._request_id, output_index),
            call_id=piece.call_id or f"call_{self._request_id}_{output_index}",
            name=piece.name,
            arguments="",
            status="in_progress",
        )
        self._output.append(item)
        self._calls[piece.key] = (output_index, piece.call_id)
        self._open_calls.append(output_index)
        return self._emit("response.output_item.added", output_index=output_index, item=item)

    def _close_call(self, output_index: int, status: str) -> bytes:
        item = self._output[output_index]
        item["status"] = status
        frames = b""
        if not item["arguments"]:  # a call without arguments: `{}`, as OpenAI sends, so that they parse as JSON
            item["arguments"] = "{}"
            frames += self._emit(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=output_index, delta="{}"
            )
        return (
            frames
            + self._emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=output_index,
                arguments=item["arguments"],
            )
            + self._emit("response.output_item.done", output_index=output_index, item=item)
        )
