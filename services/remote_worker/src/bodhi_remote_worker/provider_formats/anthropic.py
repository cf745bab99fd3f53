"""Anthropic Messages providers (``api_format`` ``anthropic``): chat completions <-> ``POST {base_url}/messages``.

The key goes in ``x-api-key`` (never ``Authorization``) with ``anthropic-version: 2023-06-01``. Anthropic requires
``max_tokens``: the chat's ``max_completion_tokens`` or ``max_tokens``, else ``DEFAULT_MAX_TOKENS``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bodhi_remote_worker.provider_formats.chat_shapes import (
    chunk,
    completion,
    content_parts,
    count,
    error_object,
    function_call,
    function_tools,
    json_object,
    malformed,
    max_tokens_of,
    member,
    named_tool_choice,
    refuse,
    refuse_unsupported,
    stop_sequences,
    text_of,
    tool_call_arguments,
    tool_call_start,
    tool_calls_of,
    unreadable_error,
    usage,
    usage_chunk,
)
from bodhi_shared.errors import InvalidRequest, UpstreamError

ANTHROPIC_VERSION = "2023-06-01"
# Used when the chat sets no limit (OpenAI's own default is "up to the model's limit"): 4096 is what every Claude
# model accepts, the older ones' output ceiling included, and ample for a chat answer. A client that wants longer
# answers says so with `max_completion_tokens`.
DEFAULT_MAX_TOKENS = 4096
LABEL = "Anthropic"

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Anthropic's error types -> (the OpenAI error type, its code)
ERROR_TYPES = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("authentication_error", "invalid_api_key"),
    "permission_error": ("permission_error", "permission_error"),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("server_error", "api_error"),
    "overloaded_error": ("server_error", "overloaded"),
}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)


class AnthropicAdapter:
    api_format = "anthropic"
    native_endpoint = "messages"

    def request_from_chat(self, chat: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        refuse_unsupported(chat, provider=LABEL)
        response_format = chat.get("response_format")
        if response_format is not None and response_format != {"type": "text"}:
            raise refuse("`response_format` is not supported by Anthropic API models.", param="response_format")
        system, messages = messages_from_chat(chat.get("messages") or [])
        body: dict[str, Any] = {
            "model": chat["model"],
            "max_tokens": max_tokens_of(chat) or DEFAULT_MAX_TOKENS,
            "messages": messages,
        }
        if system:
            body["system"] = system
        if (stop := stop_sequences(chat)) is not None:
            body["stop_sequences"] = stop
        for name in ("temperature", "top_p"):
            if chat.get(name) is not None:
                body[name] = chat[name]
        if isinstance(chat.get("user"), str) and chat["user"]:
            body["metadata"] = {"user_id": chat["user"]}
        body.update(tools_from_chat(chat))
        if chat.get("stream"):
            body["stream"] = True
        return "messages", body

    def headers(self, api_key: str) -> dict[str, str]:
        keyed = {"x-api-key": api_key} if api_key else {}
        return {**keyed, "anthropic-version": ANTHROPIC_VERSION}

    def chat_from_response(self, body: dict[str, Any], *, model: str) -> dict[str, Any]:
        content = body.get("content")
        if not isinstance(content, list):
            raise malformed(LABEL, 'no "content" list')
        texts, calls = [], []
        for block in content:
            if not isinstance(block, dict):
                raise malformed(LABEL, "a content block is not an object")
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") == "tool_use":
                arguments = json.dumps(block.get("input") or {})
                calls.append(function_call(str(block.get("id", "")), str(block.get("name", "")), arguments))
        return completion(
            str(body.get("id") or "msg"),
            int(time.time()),
            model,
            text="".join(texts) if texts or not calls else None,
            tool_calls=calls,
            finish=FINISH_REASONS.get(str(body.get("stop_reason")), "stop"),
            counted=usage_of(body.get("usage")),
        )

    def chat_stream(self, *, model: str) -> AnthropicStream:
        return AnthropicStream(model)

    def error_from_provider(self, status: int, body: bytes) -> dict[str, Any]:
        parsed = json_object(body)
        error = parsed.get("error") if parsed is not None else None
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return unreadable_error(status, body)
        return error_from(error)


def error_from(error: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic error object (``{"type", "message"}``) as an OpenAI one."""
    message = str(error.get("message", ""))
    kind = str(error.get("type", ""))
    type_, code = ERROR_TYPES.get(kind, ("server_error", kind or None))
    if kind == "not_found_error" and "model" in message.lower():
        code = "model_not_found"
    return error_object(message, type_=type_, code=code)


def usage_of(raw: Any) -> dict[str, Any]:
    """Anthropic usage as chat usage: the prompt counts the cache's tokens too, as OpenAI's does."""
    fields = raw if isinstance(raw, dict) else {}
    cached = fields.get("cache_read_input_tokens")
    prompt = (
        count(fields.get("input_tokens"))
        + count(fields.get("cache_creation_input_tokens"))
        + count(fields.get("cache_read_input_tokens"))
    )
    return usage(prompt, count(fields.get("output_tokens")), cached=count(cached) if cached is not None else None)


# --- the request --------------------------------------------------------------------------------------------------


def messages_from_chat(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """The system text (every system and developer message, in order) and the Messages turns: consecutive turns
    of one role merged (tool results go in a user turn, first, as Anthropic wants them)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of(message.get("content"), param=param))
            continue
        role, blocks = _turn(role, message, param=param)
        blocks = [b for b in blocks if not (b["type"] == "text" and not b["text"])]  # Anthropic refuses empty text
        if not blocks:
            continue  # an empty turn (an assistant's content "" and no tool calls)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(text for text in system if text), [_tidy(turn) for turn in turns]


def _turn(role: Any, message: dict[str, Any], *, param: str) -> tuple[str, list[dict[str, Any]]]:
    if role == "user":
        return "user", [_user_block(part, param=param) for part in content_parts(message.get("content"), param=param)]
    if role == "assistant":
        return "assistant", _assistant_blocks(message, param=param)
    if role == "tool":
        return "user", [_tool_result(message, param=param)]
    raise InvalidRequest(
        f"Invalid `{param}.role` {role!r}: expected system, developer, user, assistant or tool.", param="messages"
    )


def _tidy(turn: dict[str, Any]) -> dict[str, Any]:
    """Tool results first (Anthropic's rule), a lone text block as a plain string."""
    blocks = sorted(turn["content"], key=lambda block: block["type"] != "tool_result")  # stable: the rest in order
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return {"role": turn["role"], "content": blocks}


def _user_block(part: dict[str, Any], *, param: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if isinstance(url, str):
            return _image(url, param=param)
    if kind == "file":
        return _document(part.get("file"), param=param)
    raise refuse(f"`{param}`: content of type `{kind}` is not supported by Anthropic API models.", param="messages")


def _image(url: str, *, param: str) -> dict[str, Any]:
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    found = _DATA_URL.fullmatch(url)
    if found is None or found.group(1).lower() not in IMAGE_TYPES:
        raise refuse(
            f"`{param}`: an image must be an http(s) URL or a base64 data URL of a JPEG, PNG, GIF or WebP image.",
            param="messages",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": found.group(1).lower(), "data": found[2]}}


def _document(file: Any, *, param: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, dict) else None
    found = _DATA_URL.fullmatch(data) if isinstance(data, str) else None
    if found is None or found.group(1).lower() != "application/pdf":
        raise refuse(f"`{param}`: a file must be a PDF sent as `file_data` (a base64 data URL).", param="messages")
    return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": found[2]}}


def _assistant_blocks(message: dict[str, Any], *, param: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in content_parts(message.get("content"), param=param):
        text = part.get("text") if part.get("type") == "text" else part.get("refusal")
        if not isinstance(text, str):
            raise refuse(f"`{param}`: an assistant message holds text only.", param="messages")
        blocks.append({"type": "text", "text": text})
    for call in tool_calls_of(message, param=param):
        function = call["function"]
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": function["name"], "input": _arguments(function, param)}
        )
    return blocks


def _arguments(function: dict[str, Any], param: str) -> dict[str, Any]:
    """A tool call's ``arguments`` (a JSON text) as the object Anthropic's ``input`` is."""
    raw = function.get("arguments") or "{}"
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"Invalid `{param}.tool_calls`: the arguments of `{function['name']}` are not a JSON object.",
            param="messages",
        )
    return value


def _tool_result(message: dict[str, Any], *, param: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"Missing `{param}.tool_call_id`.", param="messages")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    text = text_of(message.get("content"), param=param)
    if text:
        result["content"] = text
    return result


def tools_from_chat(chat: dict[str, Any]) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` in Anthropic's shape (none of either without tools)."""
    functions = function_tools(chat, provider=LABEL)
    if not functions:
        return {}
    tools = []
    for function in functions:
        tool = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
        if function.get("description"):
            tool["description"] = function["description"]
        tools.append(tool)
    fields: dict[str, Any] = {"tools": tools}
    choice = _tool_choice(chat.get("tool_choice"))
    if chat.get("parallel_tool_calls") is False and choice.get("type") != "none":
        choice = {"type": "auto", **choice, "disable_parallel_tool_use": True}
    if choice:
        fields["tool_choice"] = choice
    return fields


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice is None:
        return {}
    if (name := named_tool_choice(choice)) is not None:
        return {"type": "tool", "name": name}
    mapped = {"auto": "auto", "required": "any", "none": "none"}.get(choice) if isinstance(choice, str) else None
    if mapped is None:
        raise InvalidRequest("Invalid `tool_choice`: expected auto, none, required or a function.", param="tool_choice")
    return {"type": mapped}


# --- the stream ---------------------------------------------------------------------------------------------------


class AnthropicStream:
    """Messages stream events -> chat chunks: text deltas as content, each tool_use block as one tool call (its
    id and name first, then its input JSON in pieces), the stop reason and the usage at the end."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.ident = "msg"
        self.created = int(time.time())
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.stopped = False

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event if event and event != "message" else str(data.get("type", ""))
        handler = self._handlers.get(kind)
        return handler(self, data) if handler is not None else []  # ping, content_block_stop, unknown events

    def finish(self) -> list[dict[str, Any]]:
        if not self.stopped and self.stop_reason is None:
            raise UpstreamError(
                "The Anthropic provider ended the stream early (no message_stop).", code="upstream_malformed_stream"
            )
        finish = FINISH_REASONS.get(str(self.stop_reason), "stop")
        return [
            chunk(self.ident, self.created, self.model, {}, finish),
            usage_chunk(self.ident, self.created, self.model, usage_of(self.usage)),
        ]

    def _delta(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        return [chunk(self.ident, self.created, self.model, delta)]

    def _message_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        message = member(data, "message")
        self.ident = str(message.get("id") or self.ident)
        if isinstance(message.get("usage"), dict):
            self.usage.update(message["usage"])
        return self._delta({"role": "assistant", "content": ""})

    def _block_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        block = member(data, "content_block")
        if block.get("type") == "text" and block.get("text"):
            return self._delta({"content": block["text"]})
        if block.get("type") != "tool_use":
            return []  # thinking and server tool blocks are not part of a chat answer
        index = len(self.tool_index)
        self.tool_index[count(data.get("index"))] = index
        chunks = self._delta(tool_call_start(index, str(block.get("id", "")), str(block.get("name", ""))))
        if block.get("input"):  # a whole input up front, as some compatible servers send it
            chunks += self._delta(tool_call_arguments(index, json.dumps(block["input"])))
        return chunks

    def _block_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = member(data, "delta")
        if delta.get("type") == "text_delta" and delta.get("text"):
            return self._delta({"content": delta["text"]})
        index = self.tool_index.get(count(data.get("index")))
        if delta.get("type") == "input_json_delta" and index is not None and delta.get("partial_json"):
            return self._delta(tool_call_arguments(index, delta["partial_json"]))
        return []  # thinking, signature and citation deltas

    def _message_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = member(data, "delta")
        if delta.get("stop_reason"):
            self.stop_reason = str(delta["stop_reason"])
        if isinstance(data.get("usage"), dict):  # cumulative counts
            self.usage.update({k: v for k, v in data["usage"].items() if v is not None})
        return []

    def _message_stop(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self.stopped = True
        return []

    def _error(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        error = member(data, "error")
        return [{"error": error_from(error or {"type": "api_error", "message": "the stream failed"})}]

    _handlers = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
        "error": _error,
    }


ANTHROPIC = AnthropicAdapter()
