"""Reading what a chat-completions provider (or llama.cpp) answers: choices, text, tool calls, usage.

Providers differ in small ways (a missing ``index`` on a tool call delta, usage in its own last chunk or on the
chunk with the finish reason, ``content: null`` beside tool calls), so every read here tolerates a missing or
null field instead of trusting one provider's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bodhi_shared.api_formats.fields import as_object


def first_choice(chat: dict[str, Any]) -> dict[str, Any] | None:
    """The choice the translation serves; Responses and Messages have no ``n``, so there is only ever one."""
    choices = chat.get("choices")
    if not isinstance(choices, list):
        return None
    return next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)


def text_of(message: dict[str, Any]) -> str:
    """A message's (or a delta's) text: ``content`` as a string or as text parts, then any ``refusal``.

    A refusal is kept as text: dropping it would leave an empty answer, and neither inbound format has a refusal
    that a chat provider's refusal maps to exactly.
    """
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    text = content if isinstance(content, str) else ""
    refusal = message.get("refusal")
    return text + refusal if isinstance(refusal, str) else text


def tool_calls_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = message.get("tool_calls")
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


@dataclass(frozen=True, slots=True)
class ToolCallPiece:
    """One tool call delta of a chunk: ``key`` identifies the call across chunks (its ``index``, else its
    position in the chunk), ``call_id`` is set on the first piece only, as are ``name`` on most providers."""

    key: int
    call_id: str | None
    name: str
    arguments: str


def tool_call_pieces(delta: dict[str, Any]) -> list[ToolCallPiece]:
    pieces = []
    for position, call in enumerate(tool_calls_of(delta)):
        function = as_object(call.get("function"))
        index, call_id = call.get("index"), call.get("id")
        name, arguments = function.get("name"), function.get("arguments")
        pieces.append(
            ToolCallPiece(
                key=index if isinstance(index, int) else position,
                call_id=call_id if isinstance(call_id, str) and call_id else None,
                name=name if isinstance(name, str) else "",
                arguments=arguments if isinstance(arguments, str) else "",
            )
        )
    return pieces


def function_of(call: dict[str, Any]) -> tuple[str, str]:
    """A complete tool call's name and arguments (``"{}"`` when a provider leaves them out)."""
    function = as_object(call.get("function"))
    name, arguments = function.get("name"), function.get("arguments")
    return (name if isinstance(name, str) else ""), (arguments if isinstance(arguments, str) and arguments else "{}")


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


def usage_of(usage: Any) -> Usage:
    """Chat usage as numbers, zeros for what is missing (a stream that ended without a usage chunk)."""
    if not isinstance(usage, dict):
        return Usage()
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    return Usage(
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
        cached_tokens=_count(prompt_details, "cached_tokens"),
        reasoning_tokens=_count(completion_details, "reasoning_tokens"),
    )


def _count(values: Any, name: str) -> int:
    value = values.get(name) if isinstance(values, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
