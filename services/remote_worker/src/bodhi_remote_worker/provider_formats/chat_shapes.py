"""What both adapters read from a chat body and build of chat answers: chunks, completions, usage, errors."""

from __future__ import annotations

import json
from typing import Any

from bodhi_shared.errors import InvalidRequest, UpstreamError

CHUNK = "chat.completion.chunk"


def refuse(message: str, *, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def refuse_unsupported(chat: dict[str, Any], *, provider: str, also: tuple[str, ...] = ()) -> None:
    """Refuse (400) what changes the answer's shape and the provider cannot do: several choices, log
    probabilities, audio, predicted outputs; ``also`` names more fields that must be absent (or null)."""
    if chat.get("n") not in (None, 1):
        raise refuse(f"`n` must be 1: {provider} answers with one choice.", param="n")
    for name in ("logprobs", "top_logprobs", "audio", "prediction", *also):
        if chat.get(name) not in (None, False):
            raise refuse(f"`{name}` is not supported by {provider} API models.", param=name)
    modalities = chat.get("modalities")
    if modalities not in (None, ["text"]):
        raise refuse(f'`modalities` may only be ["text"] with {provider} API models.', param="modalities")


def max_tokens_of(chat: dict[str, Any]) -> int | None:
    """``max_completion_tokens``, else the older ``max_tokens``: a positive integer or None."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = chat.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequest(f"Invalid value for `{name}`: expected a positive integer.", param=name)
        return value
    return None


def stop_sequences(chat: dict[str, Any]) -> list[str] | None:
    """``stop`` as a list (a string is one sequence); None when there are none."""
    stop = chat.get("stop")
    if stop is None or stop == []:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise InvalidRequest("Invalid value for `stop`: expected a string or an array of strings.", param="stop")


def text_of(content: Any, *, param: str) -> str:
    """A message's text: its string content, or its text parts joined (a system or tool message)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidRequest(f"Invalid content in `{param}`: only text parts are accepted here.", param=param)
            texts.append(part["text"])
        return "".join(texts)
    raise InvalidRequest(f"Invalid type for `{param}`: expected a string or an array of parts.", param=param)


def content_parts(content: Any, *, param: str) -> list[dict[str, Any]]:
    """A user or assistant message's content as a list of part objects (a string is one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return content
    raise InvalidRequest(f"Invalid type for `{param}`: expected a string or an array of parts.", param=param)


def tool_calls_of(message: dict[str, Any], *, param: str) -> list[dict[str, Any]]:
    """An assistant message's function tool calls, each checked for an id, a name and string arguments."""
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest(f"Invalid type for `{param}.tool_calls`: expected an array.", param=param)
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(function, dict)
            or not isinstance(call.get("id"), str)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments", ""), str)
        ):
            raise InvalidRequest(
                f"Invalid `{param}.tool_calls`: each needs an `id` and a `function` with `name` and `arguments`.",
                param=param,
            )
    return calls


def function_tools(chat: dict[str, Any], *, provider: str) -> list[dict[str, Any]]:
    """The chat's ``tools``, each a function tool with a name (its ``function`` object)."""
    tools = chat.get("tools") or []
    functions = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise refuse(f"`tools[{index}]`: {provider} API models take function tools only.", param="tools")
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise InvalidRequest(f"Missing `tools[{index}].function.name`.", param="tools")
        functions.append(function)
    return functions


def named_tool_choice(choice: Any) -> str | None:
    """The function name of ``{"type": "function", "function": {"name": ...}}``; None for anything else."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            return name
        raise InvalidRequest("Invalid `tool_choice`: `function.name` is required.", param="tool_choice")
    return None


def usage(prompt: int, completion: int, *, cached: int | None = None, reasoning: int | None = None) -> dict[str, Any]:
    """Chat-completions usage; the details only when the provider reported them."""
    counted: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        counted["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        counted["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return counted


def count(value: Any) -> int:
    """A token count from a provider (absent or malformed counts as 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def chunk(ident: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": ident,
        "object": CHUNK,
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def usage_chunk(ident: str, created: int, model: str, counted: dict[str, Any]) -> dict[str, Any]:
    return {"id": ident, "object": CHUNK, "created": created, "model": model, "choices": [], "usage": counted}


def tool_call_start(index: int, call_id: str, name: str) -> dict[str, Any]:
    """The first delta of a streamed tool call, as OpenAI sends it: its id and name, no arguments yet."""
    function = {"name": name, "arguments": ""}
    return {"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": function}]}


def tool_call_arguments(index: int, piece: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


def completion(
    ident: str,
    created: int,
    model: str,
    *,
    text: str | None,
    tool_calls: list[dict[str, Any]],
    finish: str,
    counted: dict[str, Any],
    refusal: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": refusal}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": counted,
    }


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def error_object(message: str, *, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"message": message, "type": type_, "param": param, "code": code}


def member(data: dict[str, Any], name: str) -> dict[str, Any]:
    """``data[name]`` when it is an object, else an empty one: providers' events are read without trusting them."""
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` parsed, when it is a JSON object."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def unreadable_error(status: int, body: bytes) -> dict[str, Any]:
    """An error object for a provider's error body that is not in its format (a proxy's page, plain text)."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("<"):
        text = ""  # an HTML page says nothing in a line
    detail = f": {' '.join(text.split())[:500]}" if text else ""
    return error_object(f"upstream answered HTTP {status}{detail}", type_="upstream_error", code="upstream_error")


def malformed(provider: str, what: str) -> UpstreamError:
    return UpstreamError(
        f"The {provider} provider sent an answer Bodhi cannot read ({what}). Check the API model's base URL "
        "and API format.",
        code="upstream_malformed_response",
    )
