"""Anthropic Messages (``POST /v1/messages``) over chat completions.

A Messages request becomes one chat-completions request: ``system`` a system message, each message's blocks
chat content (text, images as URLs or data URLs), ``tool_use`` blocks an assistant's tool calls and
``tool_result`` blocks tool messages, ``tools`` chat function tools. Anthropic's own tools (``web_search_...``,
``bash_...``, ``text_editor_...``, ``computer_...``) run on Anthropic's side or need its models, so they are
refused (400) rather than silently missing; ``document`` blocks and ``file`` sources are refused too.

Left out of the chat body: ``top_k`` (OpenAI's chat completions refuse the unknown field, and most providers
behind Bodhi are OpenAI-compatible ones; a local worker that wants it may take it from the inbound body),
``metadata``, ``thinking``, ``service_tier``, ``container``, ``mcp_servers`` and cache controls.
"""

from __future__ import annotations

import json
from typing import Any

from bodhi_shared.api_formats import anthropic_output as out
from bodhi_shared.api_formats.anthropic_stream import MessagesStream
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

SKIPPED_BLOCKS = {"thinking", "redacted_thinking"}  # earlier turns' thinking, sent back by clients: chat has no place
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


class MessagesTranslation:
    """The ``Translation`` of ``/v1/messages`` (see ``bodhi_shared.api_formats``)."""

    endpoint = "messages"

    def request_to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return request_to_chat(body)

    def response_from_chat(
        self, chat: dict[str, Any], *, request_id: str, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return message_from_chat(chat, request_id=request_id, request=request)

    def stream_translator(self, *, model: str, request_id: str, request: dict[str, Any]) -> MessagesStream:
        return MessagesStream(model=model, request_id=request_id, request=request)

    def error_body(self, status: int, error: dict[str, Any]) -> dict[str, Any]:
        return out.error_body(status, error)


MESSAGES = MessagesTranslation()


# --- request -> chat completions -----------------------------------------------------------------------------


def request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body for a Messages request; ``InvalidRequest`` (400) for a malformed one."""
    max_tokens = optional_positive_int(body, "max_tokens")
    if max_tokens is None:
        raise refuse("max_tokens", "field required: the most tokens to generate, an integer of at least 1.")
    chat: dict[str, Any] = {"model": body.get("model"), "messages": _system(body) + _messages(body)}
    chat["max_tokens"] = max_tokens
    chat |= _sampling(body)
    chat |= _tools(body)
    return chat | stream_fields(body)


def _system(body: dict[str, Any]) -> list[dict[str, Any]]:
    system = body.get("system")
    if system is None:
        return []
    if not isinstance(system, str):
        blocks = objects(system, param="system", what="text blocks")
        system = join_texts([_text_block(block, f"system[{i}]") for i, block in enumerate(blocks)])
    return [{"role": "system", "content": system}] if system else []


def _text_block(block: dict[str, Any], param: str) -> str:
    if block.get("type") != "text":
        raise refuse(f"{param}.type", "expected a `text` block.")
    return required_str(block, "text", param=f"{param}.text")


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    if body.get("messages") is None:
        raise refuse("messages", "field required: an array of messages.")
    messages = objects(body["messages"], param="messages", what="messages")
    if not messages:
        raise refuse("messages", "must hold at least one message.")
    chat: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        role = message.get("role")
        content = message.get("content")
        if not one_of(role, {"user", "assistant"}):
            raise refuse(f"{param}.role", "expected `user` or `assistant`.")
        if isinstance(content, str):
            chat.append({"role": role, "content": content})
            continue
        blocks = objects(content, param=f"{param}.content", what="content blocks")
        chat += _user_messages(blocks, param) if role == "user" else [_assistant_message(blocks, param)]
    return chat


def _user_messages(blocks: list[dict[str, Any]], param: str) -> list[dict[str, Any]]:
    """A user turn: one tool message per ``tool_result`` (chat wants them right after the assistant's calls), then
    a user message with the rest, if any: text, images, and the images of tool results (chat tool messages hold
    text only)."""
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        where = f"{param}.content[{index}]"
        kind = block.get("type")
        if kind == "tool_result":
            message, images = _tool_result(block, where)
            tool_messages.append(message)
            parts += images
        elif one_of(kind, SKIPPED_BLOCKS):
            continue
        else:
            parts.append(_content_part(block, where))
    if not parts and tool_messages:
        return tool_messages
    return [*tool_messages, {"role": "user", "content": _content(parts)}]


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only content as one string (see ``fields.join_texts``), else the chat content parts."""
    if all(part["type"] == "text" for part in parts):
        return join_texts([part["text"] for part in parts])
    return parts


def _content_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": required_str(block, "text", param=f"{param}.text")}
    if kind == "image":
        return _image(block, param)
    raise refuse(f"{param}.type", f"content blocks of type `{kind}` are not supported here.")


def _image(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = optional_object(block, "source", param=f"{param}.source") or {}
    kind = source.get("type")
    if kind == "base64":
        media_type = required_str(source, "media_type", param=f"{param}.source.media_type")
        data = required_str(source, "data", param=f"{param}.source.data")
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    if kind == "url":
        return {"type": "image_url", "image_url": {"url": required_str(source, "url", param=f"{param}.source.url")}}
    raise refuse(f"{param}.source.type", "expected a `base64` or `url` image source.")


def _tool_result(block: dict[str, Any], param: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A ``tool_result`` as a tool message, and the images it held (for the user message that follows)."""
    tool_use_id = required_str(block, "tool_use_id", param=f"{param}.tool_use_id")
    content = block.get("content")
    parts: list[dict[str, Any]] = []
    if content is not None and not isinstance(content, str):
        blocks = objects(content, param=f"{param}.content", what="content blocks")
        parts = [_content_part(b, f"{param}.content[{i}]") for i, b in enumerate(blocks)]
        content = join_texts([part["text"] for part in parts if part["type"] == "text"])
    text = content or ""
    if optional_bool(block, "is_error"):
        text = f"Error: {text}" if text else "Error"
    message = {"role": "tool", "tool_call_id": out.chat_tool_call_id(tool_use_id), "content": text}
    return message, [part for part in parts if part["type"] != "text"]


def _assistant_message(blocks: list[dict[str, Any]], param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        where = f"{param}.content[{index}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(required_str(block, "text", param=f"{where}.text"))
        elif kind == "tool_use":
            calls.append(_tool_call(block, where))
        elif not one_of(kind, SKIPPED_BLOCKS):
            raise refuse(f"{where}.type", f"assistant content blocks of type `{kind}` are not supported.")
    message: dict[str, Any] = {"role": "assistant", "content": join_texts(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tool_call(block: dict[str, Any], param: str) -> dict[str, Any]:
    tool_input = block.get("input", {})
    if not isinstance(tool_input, dict):
        raise refuse(f"{param}.input", "expected an object.")
    return {
        "id": out.chat_tool_call_id(required_str(block, "id", param=f"{param}.id")),
        "type": "function",
        "function": {
            "name": required_str(block, "name", param=f"{param}.name"),
            "arguments": json.dumps(tool_input, ensure_ascii=False),
        },
    }


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    chat: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        if (value := optional_number(body, name)) is not None:
            chat[name] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise refuse("stop_sequences", "expected an array of strings.")
        if stop:
            chat["stop"] = stop
    return chat


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    tools = [
        _tool(tool, f"tools[{i}]")
        for i, tool in enumerate(objects(body.get("tools") or [], param="tools", what="tools"))
    ]
    if not tools:
        return {}
    chat: dict[str, Any] = {"tools": tools}
    choice = optional_object(body, "tool_choice")
    if choice is not None:
        chat |= _tool_choice(choice)
    return chat


def _tool(tool: dict[str, Any], param: str) -> dict[str, Any]:
    kind = tool.get("type", "custom")
    if kind != "custom":
        raise refuse(
            f"{param}.type",
            f"tools of type `{kind}` are not supported: Bodhi's models run through chat completions, which call "
            "only tools defined by `name`, `description` and `input_schema`.",
        )
    function: dict[str, Any] = {"name": required_str(tool, "name", param=f"{param}.name")}
    if description := optional_str(tool, "description", param=f"{param}.description"):
        function["description"] = description
    schema = optional_object(tool, "input_schema", param=f"{param}.input_schema")
    if schema is None:
        raise refuse(f"{param}.input_schema", "field required: the tool's JSON schema.")
    function["parameters"] = schema
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any]) -> dict[str, Any]:
    kind = choice.get("type")
    chat: dict[str, Any] = {}
    if one_of(kind, TOOL_CHOICES):
        chat["tool_choice"] = TOOL_CHOICES[kind]
    elif kind == "tool":
        name = required_str(choice, "name", param="tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise refuse("tool_choice.type", "expected `auto`, `any`, `tool` or `none`.")
    if optional_bool(choice, "disable_parallel_tool_use") and kind != "none":
        chat["parallel_tool_calls"] = False
    return chat


# --- chat completion -> Message --------------------------------------------------------------------------------


def message_from_chat(
    chat: dict[str, Any], *, request_id: str, request: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A whole chat completion as an Anthropic Message."""
    choice = first_choice(chat) or {}
    message = as_object(choice.get("message"))
    content: list[dict[str, Any]] = []
    if text := text_of(message):
        content.append({"type": "text", "text": text})
    for call in tool_calls_of(message):
        name, arguments = function_of(call)
        call_id = call.get("id") if isinstance(call.get("id"), str) else None
        tool_id = out.tool_use_id(call_id, request_id=request_id, index=len(content))
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": out.tool_input(arguments)})
    reason, sequence = out.stop_reason(choice, used_tools=any(block["type"] == "tool_use" for block in content))
    model = chat.get("model") if isinstance(chat.get("model"), str) else (request or {}).get("model", "")
    return {
        "id": out.message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": str(model),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": out.message_usage(usage_of(chat.get("usage"))),
    }
