"""Typed reads of an inbound request's fields, each refusing (400, with the field as ``param``) a wrong type.

A body is checked here, in the inbound format's own names, rather than later as a chat completion: a client that
sent ``max_output_tokens: "ten"`` must hear about ``max_output_tokens``, not about a ``max_tokens`` it never sent.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from bodhi_shared.errors import InvalidRequest


def refuse(param: str, message: str) -> InvalidRequest:
    """The 400 for ``param``; the message opens with the field's path, as the Anthropic body has no ``param``."""
    return InvalidRequest(f"{param}: {message}", param=param)


def optional_str(body: dict[str, Any], name: str, *, param: str | None = None) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise refuse(param or name, "expected a string.")
    return value


def required_str(body: dict[str, Any], name: str, *, param: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise refuse(param, "field required: expected a string.")
    return value


def optional_number(body: dict[str, Any], name: str) -> float | int | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise refuse(name, "expected a number.")
    return value


def optional_positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise refuse(name, "expected an integer of at least 1.")
    return value


def optional_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise refuse(name, "expected true or false.")
    return value


def optional_object(body: dict[str, Any], name: str, *, param: str | None = None) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise refuse(param or name, "expected an object.")
    return value


def objects(value: Any, *, param: str, what: str) -> list[dict[str, Any]]:
    """``value`` as a list of objects: a non-list, or an element that is not an object, is refused."""
    if not isinstance(value, list):
        raise refuse(param, f"expected an array of {what}.")
    for index, element in enumerate(value):
        if not isinstance(element, dict):
            raise refuse(f"{param}[{index}]", f"expected an object ({what}).")
    return value


def join_texts(texts: list[str]) -> str:
    """Text parts as one string, a newline between parts.

    Chat templates of local models (llama.cpp's Jinja templates) expect a message's content to be a string; a list
    of text parts would be rendered as the list's repr or refused, so text-only content always travels as one string.
    """
    return "\n".join(texts)


def stream_fields(body: dict[str, Any]) -> dict[str, Any]:
    """``stream``, and with it ``stream_options.include_usage``: usage then arrives in a last chunk."""
    if not optional_bool(body, "stream"):
        return {}
    return {"stream": True, "stream_options": {"include_usage": True}}


def one_of(value: Any, options: set[str] | frozenset[str] | dict[str, Any]) -> TypeGuard[str]:
    """``value in options`` for a value of any JSON type (a list or an object is unhashable: ``in`` would raise)."""
    return isinstance(value, str) and value in options


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one: for reading a provider's answer, where a missing or null
    field means nothing was sent."""
    return value if isinstance(value, dict) else {}
