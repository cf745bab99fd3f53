"""The pieces of a Responses API ``Response`` object, shared by the streamed and the whole answer.

A Response echoes the request's settings (instructions, tools, tool choice, text format, sampling) beside its
output; the echo is rebuilt from what ``responses.request_to_chat`` accepted, so it always has the shape the
OpenAI SDK's types expect even where the client's spelling was looser (a tool without ``strict``).
"""

from __future__ import annotations

from typing import Any

from bodhi_shared.api_formats.chat import Usage
from bodhi_shared.api_formats.fields import as_object, one_of

# A chat finish reason -> the Response's status and `incomplete_details.reason`; any other reason is `completed`.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(request_id: str) -> str:
    return f"resp_{request_id}"


def message_id(request_id: str, output_index: int) -> str:
    return f"msg_{request_id}_{output_index}"


def function_call_id(request_id: str, output_index: int) -> str:
    return f"fc_{request_id}_{output_index}"


def outcome(finish_reason: Any) -> tuple[str, dict[str, Any] | None]:
    """The Response's ``status`` and ``incomplete_details`` for how the chat completion ended."""
    reason = INCOMPLETE_REASONS[finish_reason] if one_of(finish_reason, INCOMPLETE_REASONS) else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, *, status: str) -> dict[str, Any]:
    """An assistant message item; ``text=None`` gives the empty item that ``response.output_item.added`` opens."""
    content = [] if text is None else [output_text(text)]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def function_call_item(item_id: str, *, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def response_shell(request: dict[str, Any], *, request_id: str, model: str, created_at: int) -> dict[str, Any]:
    """A Response without output, ``in_progress``, echoing the request's settings."""
    return {
        "id": response_id(request_id),
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": _str_or_none(request.get("instructions")),
        "max_output_tokens": _echo(request.get("max_output_tokens"), int),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": _str_or_none(request.get("previous_response_id")),
        "reasoning": {"effort": _reasoning_effort(request), "summary": None},
        "store": request.get("store") is not False,
        "temperature": _echo(request.get("temperature"), int | float),
        "text": {"format": _text_format(request)},
        "tool_choice": _tool_choice(request.get("tool_choice")),
        "tools": _tools(request.get("tools")),
        "top_p": _echo(request.get("top_p"), int | float),
        "truncation": "disabled",
        "usage": None,
        "user": _str_or_none(request.get("user")),
        "metadata": as_object(request.get("metadata")),
    }


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _echo(value: Any, kind: Any) -> Any:
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _reasoning_effort(request: dict[str, Any]) -> str | None:
    reasoning = request.get("reasoning")
    return _str_or_none(reasoning.get("effort")) if isinstance(reasoning, dict) else None


def _text_format(request: dict[str, Any]) -> dict[str, Any]:
    text = request.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    if isinstance(text_format, dict) and one_of(text_format.get("type"), {"json_object", "json_schema"}):
        return text_format
    return {"type": "text"}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        return {"type": "function", "name": choice["name"]}
    return choice if one_of(choice, {"auto", "none", "required"}) else "auto"


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        return []
    return [
        {
            "type": "function",
            "name": tool["name"],
            "description": _str_or_none(tool.get("description")),
            "parameters": tool.get("parameters") if isinstance(tool.get("parameters"), dict) else None,
            "strict": tool.get("strict") if isinstance(tool.get("strict"), bool) else None,
        }
        for tool in tools
        if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("name"), str)
    ]
