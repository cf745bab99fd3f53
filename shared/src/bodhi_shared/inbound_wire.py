"""The fields of a Responses API or Anthropic Messages request the API checks before it enqueues a job.

As ``openai_wire`` does for chat completions: only the shape of what no answer can do without, so that the client
gets its 400 at once instead of after a worker took the job; the worker's translation
(``bodhi_shared.api_formats``) checks the rest. The messages name the field first, as the translations do (an
Anthropic error body has no ``param``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bodhi_shared.errors import InvalidRequest


def check_inbound_fields(body: dict[str, Any], endpoint: str) -> None:
    """``endpoint`` is ``responses`` or ``messages``; other endpoints are not checked here."""
    checks = _CHECKS.get(endpoint)
    if checks is None:
        return
    checks(body)
    if body.get("tools") is not None:
        _objects(body["tools"], "tools", what="tools")


def _responses(body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None:
        raise _refuse("input", "field required: a string or an array of input items.")
    if not isinstance(value, str):
        _objects(value, "input", what="input items")
    previous = body.get("previous_response_id")
    if previous is not None and not (isinstance(previous, str) and previous):
        raise _refuse("previous_response_id", "expected the id of a stored response (a string).")
    if body.get("store") is not None and not isinstance(body["store"], bool):
        raise _refuse("store", "expected true or false.")


def _messages(body: dict[str, Any]) -> None:
    if body.get("messages") is None:
        raise _refuse("messages", "field required: an array of messages.")
    _objects(body["messages"], "messages", what="messages")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _refuse("max_tokens", "field required: the most tokens to generate, an integer of at least 1.")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _refuse("max_tokens", "expected an integer of at least 1.")


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {"responses": _responses, "messages": _messages}


def _refuse(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param)


def _objects(value: Any, param: str, *, what: str) -> None:
    if not isinstance(value, list):
        raise _refuse(param, f"expected an array of {what}.")
    for index, element in enumerate(value):
        if not isinstance(element, dict):
            raise _refuse(f"{param}[{index}]", f"expected an object ({what}).")
