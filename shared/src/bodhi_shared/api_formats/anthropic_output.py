"""The pieces of an Anthropic ``Message`` that the streamed and the whole answer share.

Tool ids: Anthropic's are ``toolu_...``; a chat provider's (``call_...``, or a 9-character Mistral id) get the
``toolu_`` prefix on the way out, and ``chat_tool_call_id`` takes it off again on the way back in, so that the
provider sees its own ids in the next turn.
"""

from __future__ import annotations

import json
from typing import Any

from bodhi_shared.api_formats.chat import Usage
from bodhi_shared.api_formats.fields import one_of

TOOL_ID_PREFIX = "toolu_"
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use"}
STOP_REASONS |= {"content_filter": "refusal"}
# The Anthropic error type for an HTTP status (https://docs.claude.com/en/api/errors); other 4xx are
# invalid_request_error, other 5xx api_error.
ERROR_TYPES = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def tool_use_id(call_id: str | None, *, request_id: str, index: int) -> str:
    if not call_id:
        return f"{TOOL_ID_PREFIX}{request_id}_{index}"
    return call_id if call_id.startswith(TOOL_ID_PREFIX) else TOOL_ID_PREFIX + call_id


def chat_tool_call_id(tool_use_id: str) -> str:
    return tool_use_id.removeprefix(TOOL_ID_PREFIX) or tool_use_id


def stop_reason(choice: dict[str, Any], *, used_tools: bool) -> tuple[str, str | None]:
    """``stop_reason`` and ``stop_sequence`` for how a chat choice ended.

    Chat says ``stop`` both for the end of a turn and for a stop sequence; only providers that name the sequence
    (vLLM's string ``stop_reason``) let it be told apart. A turn that called tools is ``tool_use`` whatever the
    provider's finish reason (llama.cpp's chat handlers say ``stop``), unless it was cut off (``max_tokens``).
    """
    finish_reason = choice.get("finish_reason")
    reason = STOP_REASONS[finish_reason] if one_of(finish_reason, STOP_REASONS) else "end_turn"
    if used_tools and reason != "max_tokens":
        return "tool_use", None
    matched = choice.get("stop_reason")
    if reason == "end_turn" and isinstance(matched, str) and matched:
        return "stop_sequence", matched
    return reason, None


def message_usage(usage: Usage) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` leaves out the prompt tokens read from a cache, which OpenAI's
    ``prompt_tokens`` includes and Anthropic counts as ``cache_read_input_tokens``."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    counted = {"input_tokens": usage.prompt_tokens - cached, "output_tokens": usage.completion_tokens}
    return counted | ({"cache_read_input_tokens": cached} if cached else {})


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the ``input`` object of a ``tool_use`` block; ``{}`` for arguments that are not
    a JSON object (a small local model's broken JSON), as ``input`` must be an object."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(status: int, error: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``."""
    message = error.get("message")
    text = message if isinstance(message, str) and message else f"The request failed (HTTP {status})."
    return {"type": "error", "error": {"type": error_type(status), "message": text}}
