"""The OpenAI request fields Bodhi reads; every other field passes through untouched, unparsed.

Untouched is not unchecked: the body goes into a msgpack job and on to a provider, so it must be JSON that both
can carry. ``load_json_body`` refuses (400) what would fail later as a 500 or reach a provider as invalid JSON:
bytes that are not UTF-8, bare ``NaN`` / ``Infinity`` (Python's json accepts them, JSON does not), lone
surrogates (no UTF-8 encoding exists for them) and nesting deeper than ``MAX_JSON_DEPTH`` (Python's parser
raises RecursionError near 1,000 levels; msgpack refuses 512).
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from bodhi_shared.clean_text import check_line
from bodhi_shared.errors import InvalidRequest

MAX_JSON_DEPTH = 64
# Longer than any id the gateway can serve (a 32-character prefix + a 256-character model id, a 128-character alias).
MAX_MODEL_ID = 512
# A `\uD800`-`\uDFFF` escape without its partner: only these make a lone surrogate. A match may be a false alarm
# (an escaped backslash before `ud800`, as text), so it only triggers the exact check.
_LONE_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """The part of an inference request (chat completion, completion, embeddings) the gateway needs to route it."""

    model: str
    stream: bool = False


class _NonFiniteNumber(Exception):
    """``NaN``, ``Infinity`` or ``-Infinity``, which Python's json accepts and JSON does not have."""


def _refuse_constant(name: str) -> Any:
    raise _NonFiniteNumber(name)


def load_json_body(raw: bytes, *, what: str) -> Any:
    """Parse a request body as strict JSON in UTF-8, at most ``MAX_JSON_DEPTH`` levels deep (400 otherwise).

    ``what`` says what the body should hold, for the messages.
    """
    try:
        text = raw.decode("utf-8")  # json.loads on bytes would let encoded surrogates through
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid UTF-8 (byte {exc.start}). Send JSON in UTF-8.") from None
    try:
        body = json.loads(text, parse_constant=_refuse_constant)
    except _NonFiniteNumber as exc:
        raise InvalidRequest(f"The request body holds `{exc}`, which is not JSON: send a number or null.") from None
    except RecursionError:
        raise InvalidRequest(_too_deep_message()) from None
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON ({exc}). Send a JSON object with {what}.") from exc
    if _deeper_than(body, MAX_JSON_DEPTH, hint=text):
        raise InvalidRequest(_too_deep_message())
    if _LONE_SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(body):
        raise InvalidRequest("The request body holds a lone surrogate escape (`\\ud800`-`\\udfff` without its pair).")
    return body


def _too_deep_message() -> str:
    return f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."


def _deeper_than(value: Any, limit: int, *, hint: str) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep."""
    if hint.count("{") + hint.count("[") <= limit:
        return False  # not enough brackets in the whole text to nest that deep: the usual case, at C speed
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _has_lone_surrogate(body: Any) -> bool:
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_inference_request(
    raw: bytes, *, endpoint: str = "chat/completions"
) -> tuple[InferenceRequest, dict[str, Any]]:
    """Parse a request body; return the routed fields and the whole body as a dict.

    Checked by hand rather than with a pydantic model: a model with ``extra="allow"`` would copy every message
    of every request on the hot path just to read two fields.
    """
    what = _WHAT.get(endpoint, "`model`")
    body = load_json_body(raw, what=what)
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object with {what}.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "You must provide a model parameter: set `model` to a name listed by GET /v1/models.", param="model"
        )
    _check_model_id(model)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("Invalid value for `stream`: expected true or false.", param="stream")
    _check_fields(body, endpoint)
    return InferenceRequest(model=model, stream=stream), body


_WHAT = {
    "chat/completions": "`model` and `messages`",
    "completions": "`model` and `prompt`",
    "embeddings": "`model` and `input`",
}


def _check_fields(body: dict[str, Any], endpoint: str) -> None:
    """The fields without which no provider or local model can answer, by their shape only (400 here, rather than
    a provider's 4xx or a worker's 500 later); their contents, and every other field, pass through unread."""
    if endpoint == "chat/completions":
        messages = body.get("messages")
        if messages is None:
            raise InvalidRequest(
                "Missing required parameter: `messages` (an array of message objects).", param="messages"
            )
        _check_objects(messages, "messages", what="message objects")
        if body.get("tools") is not None:
            _check_objects(body["tools"], "tools", what="tool objects")
    elif endpoint == "completions":
        prompt = body.get("prompt")
        if prompt is None:
            raise InvalidRequest("Missing required parameter: `prompt` (a string or an array).", param="prompt")
        if not isinstance(prompt, str | list):
            raise InvalidRequest(
                f"Invalid type for `prompt`: {_kind(prompt)}, not a string or an array.", param="prompt"
            )
    elif endpoint == "embeddings":
        value = body.get("input")
        if value is None:
            raise InvalidRequest("Missing required parameter: `input` (a string or an array).", param="input")
        if not isinstance(value, str | list):
            raise InvalidRequest(f"Invalid type for `input`: {_kind(value)}, not a string or an array.", param="input")


def _check_objects(value: Any, name: str, *, what: str) -> None:
    if not isinstance(value, list):
        raise InvalidRequest(f"Invalid type for `{name}`: {_kind(value)}, not an array of {what}.", param=name)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"Invalid type for `{name}[{index}]`: {_kind(item)}, not an object.", param=name)


def _kind(value: Any) -> str:
    """How a JSON value reads in a message: ``a string``, ``a number``, ..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else "null"


def _check_model_id(model: str) -> None:
    """Refuse a `model` that no served id can be (400), before it reaches a Postgres lookup or a log line."""
    if len(model) > MAX_MODEL_ID:
        raise InvalidRequest(
            f"Invalid value for `model`: at most {MAX_MODEL_ID} characters; see GET /v1/models.", param="model"
        )
    try:
        check_line(model)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid value for `model`: it {exc}.", param="model") from None
