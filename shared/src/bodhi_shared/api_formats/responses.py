"""The OpenAI Responses API (``POST /v1/responses``) over chat completions.

A Responses request becomes one chat-completions request: ``instructions`` a system message, ``input`` the
conversation (messages, function calls and their outputs), ``tools`` chat function tools, ``text.format`` a
``response_format``. Only what chat completions can express is accepted: hosted tools (``web_search``,
``file_search``, ...) and settings that need OpenAI's own state (``conversation``, ``prompt``, ``background``)
are refused with a 400 naming the field, so a client learns at once instead of getting an answer that silently
ignored them. ``store``, ``metadata`` and ``previous_response_id`` are the API's business and are left out of the
chat body; ``input_items_of`` helps the API put a stored response in front of new input.

``max_output_tokens`` becomes ``max_tokens``, not ``max_completion_tokens``: every chat-completions server Bodhi
forwards to understands ``max_tokens`` (llama-cpp-python's ``create_chat_completion`` has no other; vLLM, Groq,
Mistral, DeepSeek and the llama.cpp server accept it), while ``max_completion_tokens`` is unknown to several.
OpenAI's own reasoning models refuse ``max_tokens``; a provider-specific rename belongs to the remote worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bodhi_shared.api_formats import responses_output as out
from bodhi_shared.api_formats.chat import first_choice, function_of, text_of, tool_calls_of, usage_of
from bodhi_shared.api_formats.fields import (
    as_object,
    join_texts,
    objects,
    one_of,
    optional_bool,
    optional_number,
    optional_object,
    optional_positive_int,
    optional_str,
    refuse,
    required_str,
    stream_fields,
)
from bodhi_shared.api_formats.responses_stream import ResponsesStream

# Fields that need state or services OpenAI keeps and a chat-completions provider has not.
UNSUPPORTED_FIELDS = {
    "conversation": "Conversations are not supported: send the previous turns in `input`, or `previous_response_id`.",
    "prompt": "Stored prompt templates are not supported: send the prompt in `instructions` and `input`.",
}
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TOOL_CHOICES = {"auto", "none", "required"}


class ResponsesTranslation:
    """The ``Translation`` of ``/v1/responses`` (see ``bodhi_shared.api_formats``)."""

    endpoint = "responses"

    def request_to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return request_to_chat(body)

    def response_from_chat(
        self, chat: dict[str, Any], *, request_id: str, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return response_from_chat(chat, request_id=request_id, request=request)

    def stream_translator(self, *, model: str, request_id: str, request: dict[str, Any]) -> ResponsesStream:
        return ResponsesStream(model=model, request_id=request_id, request=request)

    def error_body(self, status: int, error: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI error body, as on every other OpenAI route."""
        return {"error": error}


RESPONSES = ResponsesTranslation()


# --- request -> chat completions -----------------------------------------------------------------------------


def request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body for a Responses request; ``InvalidRequest`` (400) for a malformed one."""
    _refuse_unsupported(body)
    chat: dict[str, Any] = {"model": body.get("model"), "messages": _instructions(body) + input_messages(body)}
    chat |= _sampling(body)
    chat |= _tools(body)
    chat |= _text_format(body)
    return chat | stream_fields(body)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, message in UNSUPPORTED_FIELDS.items():
        if body.get(name) is not None:
            raise refuse(name, message)
    if optional_bool(body, "background"):
        raise refuse("background", "Background responses are not supported: send the request without it.")


def _instructions(body: dict[str, Any]) -> list[dict[str, Any]]:
    instructions = optional_str(body, "instructions")
    return [{"role": "system", "content": instructions}] if instructions else []


def input_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``input`` (a string, or a list of items) as chat messages."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if value is None:
        raise refuse("input", "field required: a string or an array of input items.")
    items = objects(value, param="input", what="input items")
    if not items:
        raise refuse("input", "must not be empty.")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        kind = item.get("type", "message")  # an "easy" input message may leave its type out
        reader = ITEM_READERS.get(kind) if isinstance(kind, str) else None
        if reader is None:
            raise refuse(f"{param}.type", f"input items of type `{kind}` are not supported.")
        reader(messages, item, param)
    return messages


def _message_item(messages: list[dict[str, Any]], item: dict[str, Any], param: str) -> None:
    role = item.get("role")
    if not one_of(role, ROLES):
        raise refuse(f"{param}.role", "expected one of `user`, `assistant`, `system`, `developer`.")
    content = item.get("content")
    if isinstance(content, str):
        messages.append({"role": ROLES[role], "content": content})
        return
    parts = [
        _part(part, f"{param}.content[{i}]")
        for i, part in enumerate(objects(content, param=f"{param}.content", what="content parts"))
    ]
    if role != "user" and any(part["type"] != "text" for part in parts):
        raise refuse(f"{param}.content", f"{role} messages hold text only.")
    messages.append({"role": ROLES[role], "content": _content(parts)})


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only content as one string (see ``fields.join_texts``), else the chat content parts."""
    if all(part["type"] == "text" for part in parts):
        return join_texts([part["text"] for part in parts])
    return parts


def _part(part: dict[str, Any], param: str) -> dict[str, Any]:
    kind = part.get("type")
    if one_of(kind, {"input_text", "output_text"}):
        return {"type": "text", "text": required_str(part, "text", param=f"{param}.text")}
    if kind == "refusal":
        return {"type": "text", "text": required_str(part, "refusal", param=f"{param}.refusal")}
    if kind == "input_image":
        return _image_part(part, param)
    if kind == "input_file":
        return _file_part(part, param)
    raise refuse(f"{param}.type", f"content parts of type `{kind}` are not supported.")


def _image_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    url = optional_str(part, "image_url", param=f"{param}.image_url")
    if not url:
        raise refuse(f"{param}.image_url", "send the image as a URL or a data URL; `file_id` images are not supported.")
    image: dict[str, Any] = {"url": url}
    if one_of(part.get("detail"), {"auto", "low", "high"}):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    file_data = optional_str(part, "file_data", param=f"{param}.file_data")
    if not file_data:
        raise refuse(
            f"{param}.file_data", "send the file's content in `file_data`; `file_id` and `file_url` are not supported."
        )
    file = {"file_data": file_data}
    if filename := optional_str(part, "filename", param=f"{param}.filename"):
        file["filename"] = filename
    return {"type": "file", "file": file}


def _function_call_item(messages: list[dict[str, Any]], item: dict[str, Any], param: str) -> None:
    """A function call the model made: a tool call of an assistant message, the one just before if there is one
    (chat has one assistant message per turn, holding its text and all its calls)."""
    call = {
        "id": required_str(item, "call_id", param=f"{param}.call_id"),
        "type": "function",
        "function": {
            "name": required_str(item, "name", param=f"{param}.name"),
            "arguments": required_str(item, "arguments", param=f"{param}.arguments"),
        },
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_call_output_item(messages: list[dict[str, Any]], item: dict[str, Any], param: str) -> None:
    output = item.get("output")
    if isinstance(output, list):
        parts = [
            _part(p, f"{param}.output[{i}]")
            for i, p in enumerate(objects(output, param=f"{param}.output", what="content parts"))
        ]
        if any(part["type"] != "text" for part in parts):
            raise refuse(f"{param}.output", "function call outputs hold text only.")
        output = join_texts([part["text"] for part in parts])
    if not isinstance(output, str):
        raise refuse(f"{param}.output", "field required: a string or an array of text parts.")
    call_id = required_str(item, "call_id", param=f"{param}.call_id")
    messages.append({"role": "tool", "tool_call_id": call_id, "content": output})


def _reasoning_item(messages: list[dict[str, Any]], item: dict[str, Any], param: str) -> None:
    """Skipped: clients send earlier reasoning items back, and a chat completion has no place for them."""


ITEM_READERS: dict[str, Callable[[list[dict[str, Any]], dict[str, Any], str], None]] = {
    "message": _message_item,
    "function_call": _function_call_item,
    "function_call_output": _function_call_output_item,
    "reasoning": _reasoning_item,
}


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    chat: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        if (value := optional_number(body, name)) is not None:
            chat[name] = value
    if (max_tokens := optional_positive_int(body, "max_output_tokens")) is not None:
        chat["max_tokens"] = max_tokens
    reasoning = optional_object(body, "reasoning") or {}
    if effort := optional_str(reasoning, "effort", param="reasoning.effort"):
        chat["reasoning_effort"] = effort
    return chat


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    """``tools`` as chat tools; ``tool_choice`` and ``parallel_tool_calls`` only beside tools (OpenAI's chat
    completions refuse them alone)."""
    tools = [
        _tool(tool, f"tools[{i}]")
        for i, tool in enumerate(objects(body.get("tools") or [], param="tools", what="tools"))
    ]
    if not tools:
        return {}
    chat: dict[str, Any] = {"tools": tools}
    if (choice := body.get("tool_choice")) is not None:
        chat["tool_choice"] = _tool_choice(choice)
    if (parallel := optional_bool(body, "parallel_tool_calls")) is not None:
        chat["parallel_tool_calls"] = parallel
    return chat


def _tool(tool: dict[str, Any], param: str) -> dict[str, Any]:
    kind = tool.get("type")
    if kind != "function":
        raise refuse(
            f"{param}.type",
            f"tools of type `{kind}` are not supported: Bodhi's models run through chat completions, which call "
            "only `function` tools that your code executes.",
        )
    function: dict[str, Any] = {"name": required_str(tool, "name", param=f"{param}.name")}
    if description := optional_str(tool, "description", param=f"{param}.description"):
        function["description"] = description
    if (parameters := optional_object(tool, "parameters", param=f"{param}.parameters")) is not None:
        function["parameters"] = parameters
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if one_of(choice, TOOL_CHOICES):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise refuse("tool_choice", 'expected `auto`, `none`, `required` or {"type": "function", "name": ...}.')


def _text_format(body: dict[str, Any]) -> dict[str, Any]:
    text = optional_object(body, "text") or {}
    text_format = optional_object(text, "format", param="text.format")
    kind = (text_format or {}).get("type", "text")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"response_format": {"type": "json_object"}}
    if kind != "json_schema" or text_format is None:
        raise refuse("text.format.type", "expected `text`, `json_object` or `json_schema`.")
    name = required_str(text_format, "name", param="text.format.name")
    if (json_schema := optional_object(text_format, "schema", param="text.format.schema")) is None:
        raise refuse("text.format.schema", "field required: the JSON schema the output must follow.")
    schema: dict[str, Any] = {"name": name, "schema": json_schema}
    if description := optional_str(text_format, "description", param="text.format.description"):
        schema["description"] = description
    if isinstance(text_format.get("strict"), bool):
        schema["strict"] = text_format["strict"]
    return {"response_format": {"type": "json_schema", "json_schema": schema}}


# --- chat completion -> Response -----------------------------------------------------------------------------


def response_from_chat(
    chat: dict[str, Any], *, request_id: str, request: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A whole chat completion as a Response; ``request`` (the inbound body), when given, is echoed in it."""
    choice = first_choice(chat) or {}
    message = as_object(choice.get("message"))
    model = chat.get("model") if isinstance(chat.get("model"), str) else (request or {}).get("model", "")
    created = chat["created"] if isinstance(chat.get("created"), int) else int(time.time())
    response = out.response_shell(request or {}, request_id=request_id, model=str(model), created_at=created)
    status, incomplete_details = out.outcome(choice.get("finish_reason"))
    item_status = "incomplete" if status == "incomplete" else "completed"
    output: list[dict[str, Any]] = []
    if text := text_of(message):
        output.append(out.message_item(out.message_id(request_id, 0), text, status=item_status))
    for call in tool_calls_of(message):
        output.append(_function_call(call, request_id=request_id, output_index=len(output), status=item_status))
    response |= {"status": status, "incomplete_details": incomplete_details, "output": output}
    response["usage"] = out.response_usage(usage_of(chat.get("usage")))
    return response


def _function_call(call: dict[str, Any], *, request_id: str, output_index: int, status: str) -> dict[str, Any]:
    name, arguments = function_of(call)
    call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
    return out.function_call_item(
        out.function_call_id(request_id, output_index),
        call_id=call_id or f"call_{request_id}_{output_index}",
        name=name,
        arguments=arguments,
        status=status,
    )


# --- a stored Response -> input items --------------------------------------------------------------------------


def input_items_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored Response's output as input items, for ``previous_response_id``: the API sends
    ``previous input + input_items_of(previous response) + new input``. Items chat cannot carry (reasoning) are
    left out."""
    items: list[dict[str, Any]] = []
    output = response.get("output")
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            items.append({"type": "message", "role": "assistant", "content": _output_parts(item)})
        elif item.get("type") == "function_call":
            items.append({key: item.get(key) for key in ("type", "call_id", "name", "arguments")})
    return items


def _output_parts(item: dict[str, Any]) -> list[dict[str, Any]]:
    parts = item.get("content")
    return [
        {"type": "output_text", "text": str(part.get("text" if part["type"] == "output_text" else "refusal") or "")}
        for part in (parts if isinstance(parts, list) else [])
        if isinstance(part, dict) and one_of(part.get("type"), {"output_text", "refusal"})
    ]
