"""Providers of the OpenAI Responses API (``api_format`` ``openai-responses``): chat <-> ``POST {base_url}/responses``.

The key is a bearer token, as for chat completions. Requests are sent with ``store: false``: the gateway keeps no
provider-side state for a chat request, and a chat client sends its whole conversation each time anyway.
"""

from __future__ import annotations

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

LABEL = "OpenAI Responses"
# Chat fields that mean the same in a Responses request, copied as they are.
PASSED_ON = (
    "temperature",
    "top_p",
    "user",
    "metadata",
    "service_tier",
    "parallel_tool_calls",
    "safety_identifier",
    "prompt_cache_key",
)
INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


class ResponsesAdapter:
    api_format = "openai-responses"
    native_endpoint = "responses"

    def request_from_chat(self, chat: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        refuse_unsupported(chat, provider=LABEL)
        if stop_sequences(chat) is not None:
            raise refuse("`stop` is not supported by OpenAI Responses API models.", param="stop")
        instructions, items = input_from_chat(chat.get("messages") or [])
        body: dict[str, Any] = {"model": chat["model"], "input": items, "store": False}
        if instructions:
            body["instructions"] = instructions
        if (limit := max_tokens_of(chat)) is not None:
            body["max_output_tokens"] = limit
        body.update({name: chat[name] for name in PASSED_ON if chat.get(name) is not None})
        if chat.get("reasoning_effort") is not None:
            body["reasoning"] = {"effort": chat["reasoning_effort"]}
        if (text := _text_format(chat.get("response_format"))) is not None:
            body["text"] = text
        body.update(_tools(chat))
        if chat.get("stream"):
            body["stream"] = True
        return "responses", body

    def headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def chat_from_response(self, body: dict[str, Any], *, model: str) -> dict[str, Any]:
        output = body.get("output")
        if not isinstance(output, list):
            raise malformed(LABEL, 'no "output" list')
        if body.get("status") == "failed":
            error = member(body, "error")
            raise UpstreamError(f"The provider failed the request: {error.get('message', 'no reason given')}")
        texts, refusals, calls = [], [], []
        for item in output:
            if not isinstance(item, dict):
                raise malformed(LABEL, "an output item is not an object")
            if item.get("type") == "message":
                for part in item.get("content") or []:
                    if part.get("type") == "output_text":
                        texts.append(str(part.get("text", "")))
                    elif part.get("type") == "refusal":
                        refusals.append(str(part.get("refusal", "")))
            elif item.get("type") == "function_call":
                call_id = str(item.get("call_id") or item.get("id") or "")
                calls.append(function_call(call_id, str(item.get("name", "")), str(item.get("arguments") or "")))
        created = body.get("created_at")
        return completion(
            str(body.get("id") or "resp"),
            int(created) if isinstance(created, int | float) else int(time.time()),
            model,
            text="".join(texts) if texts or not calls else None,
            tool_calls=calls,
            finish=finish_reason(body, tool_calls=bool(calls)),
            counted=usage_of(body.get("usage")),
            refusal="".join(refusals) or None,
        )

    def chat_stream(self, *, model: str) -> ResponsesStream:
        return ResponsesStream(model)

    def error_from_provider(self, status: int, body: bytes) -> dict[str, Any]:
        parsed = json_object(body)
        error = parsed.get("error") if parsed is not None else None
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return unreadable_error(status, body)
        return error_object(
            error["message"],
            type_=str(error.get("type") or "api_error"),
            code=error.get("code") if isinstance(error.get("code"), str) else None,
            param=error.get("param") if isinstance(error.get("param"), str) else None,
        )


def finish_reason(response: dict[str, Any], *, tool_calls: bool) -> str:
    if response.get("status") == "incomplete":
        details = member(response, "incomplete_details")
        return INCOMPLETE_REASONS.get(str(details.get("reason")), "length")
    return "tool_calls" if tool_calls else "stop"


def usage_of(raw: Any) -> dict[str, Any]:
    fields = raw if isinstance(raw, dict) else {}
    inputs = member(fields, "input_tokens_details")
    outputs = member(fields, "output_tokens_details")
    cached, reasoning = inputs.get("cached_tokens"), outputs.get("reasoning_tokens")
    return usage(
        count(fields.get("input_tokens")),
        count(fields.get("output_tokens")),
        cached=count(cached) if cached is not None else None,
        reasoning=count(reasoning) if reasoning is not None else None,
    )


def _stream_error(error: Any) -> dict[str, Any]:
    fields = error if isinstance(error, dict) else {}
    code = fields.get("code") if isinstance(fields.get("code"), str) else None
    type_ = "rate_limit_error" if code == "rate_limit_exceeded" else "server_error"
    if code and code.startswith("invalid"):
        type_ = "invalid_request_error"
    message = str(fields.get("message") or "the response failed")
    param = fields.get("param") if isinstance(fields.get("param"), str) else None
    return {"error": error_object(message, type_=type_, code=code, param=param)}


# --- the request --------------------------------------------------------------------------------------------------


def input_from_chat(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """The instructions (every system and developer message) and the input items: messages, function calls
    and their outputs, in the conversation's order."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        role = message.get("role")
        if role in ("system", "developer"):
            instructions.append(text_of(message.get("content"), param=param))
        elif role == "user":
            content = message.get("content")
            parts = (
                content
                if isinstance(content, str)
                else [_input_part(p, param) for p in content_parts(content, param=param)]
            )
            items.append({"type": "message", "role": "user", "content": parts})
        elif role == "assistant":
            items.extend(_assistant_items(message, param=param))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"Missing `{param}.tool_call_id`.", param="messages")
            output = text_of(message.get("content"), param=param)
            items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        else:
            raise InvalidRequest(
                f"Invalid `{param}.role` {role!r}: expected system, developer, user, assistant or tool.",
                param="messages",
            )
    return "\n\n".join(text for text in instructions if text), items


def _input_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "input_text", "text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        detail = image.get("detail") if isinstance(image, dict) else None
        if isinstance(url, str):
            return {"type": "input_image", "image_url": url, "detail": detail or "auto"}
    if kind == "file" and isinstance(part.get("file"), dict):
        file = part["file"]
        return {"type": "input_file", **{k: file[k] for k in ("file_data", "file_id", "filename") if k in file}}
    raise refuse(f"`{param}`: content of type `{kind}` is not supported by {LABEL} API models.", param="messages")


def _assistant_items(message: dict[str, Any], *, param: str) -> list[dict[str, Any]]:
    texts = []
    for part in content_parts(message.get("content"), param=param):
        text = part.get("text") if part.get("type") == "text" else part.get("refusal")
        if not isinstance(text, str):
            raise refuse(f"`{param}`: an assistant message holds text only.", param="messages")
        texts.append(text)
    items: list[dict[str, Any]] = []
    if "".join(texts):
        items.append({"type": "message", "role": "assistant", "content": "".join(texts)})
    for call in tool_calls_of(message, param=param):
        function = call["function"]
        items.append(
            {
                "type": "function_call",
                "call_id": call["id"],
                "name": function["name"],
                "arguments": function.get("arguments") or "{}",
            }
        )
    return items


def _tools(chat: dict[str, Any]) -> dict[str, Any]:
    """Function tools flattened (``{"type": "function", "name", ...}``, no ``function`` object) and the choice."""
    fields: dict[str, Any] = {}
    functions = function_tools(chat, provider=LABEL)
    if functions:
        fields["tools"] = [
            {
                "type": "function",
                "name": function["name"],
                "description": function.get("description"),
                "parameters": function.get("parameters") or {"type": "object", "properties": {}},
                # The Responses API's default is strict, chat's is not: say which, as the chat client meant it.
                "strict": bool(function.get("strict", False)),
            }
            for function in functions
        ]
    choice = chat.get("tool_choice")
    if (name := named_tool_choice(choice)) is not None:
        fields["tool_choice"] = {"type": "function", "name": name}
    elif choice in ("auto", "none", "required"):
        fields["tool_choice"] = choice
    elif choice is not None:
        raise InvalidRequest("Invalid `tool_choice`: expected auto, none, required or a function.", param="tool_choice")
    return fields


def _text_format(response_format: Any) -> dict[str, Any] | None:
    """``response_format`` as the Responses ``text.format``; None for plain text."""
    if response_format is None or response_format == {"type": "text"}:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return {"format": {"type": "json_object"}}
    schema = response_format.get("json_schema") if kind == "json_schema" else None
    if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
        raise InvalidRequest(
            "Invalid `response_format`: expected text, json_object, or json_schema with a `json_schema.name`.",
            param="response_format",
        )
    fields = {k: schema[k] for k in ("name", "schema", "strict", "description") if schema.get(k) is not None}
    return {"format": {"type": "json_schema", **fields}}


# --- the stream ---------------------------------------------------------------------------------------------------


class ResponsesStream:
    """Responses stream events -> chat chunks: output text as content, each function_call item as one tool call
    (its call id and name first, then its arguments in pieces); the end from ``response.completed`` (or
    ``response.incomplete``), with the usage."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.ident = "resp"
        self.created = int(time.time())
        self.by_item: dict[str, int] = {}  # function_call item id -> tool call index
        self.by_output: dict[int, int] = {}  # output index -> tool call index
        self.streamed_arguments: set[int] = set()
        self.final: dict[str, Any] | None = None

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event if event and event != "message" else str(data.get("type", ""))
        handler = self._handlers.get(kind)
        return handler(self, data) if handler is not None else []  # reasoning, content parts, *.done, unknown

    def finish(self) -> list[dict[str, Any]]:
        if self.final is None:
            raise UpstreamError(
                "The OpenAI Responses provider ended the stream early (no response.completed).",
                code="upstream_malformed_stream",
            )
        finish = finish_reason(self.final, tool_calls=bool(self.by_item or self.by_output))
        return [
            chunk(self.ident, self.created, self.model, {}, finish),
            usage_chunk(self.ident, self.created, self.model, usage_of(self.final.get("usage"))),
        ]

    def _delta(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        return [chunk(self.ident, self.created, self.model, delta)]

    def _index(self, data: dict[str, Any]) -> int | None:
        found = self.by_item.get(str(data.get("item_id")))
        return found if found is not None else self.by_output.get(count(data.get("output_index")))

    def _created(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        response = member(data, "response")
        self.ident = str(response.get("id") or self.ident)
        if isinstance(response.get("created_at"), int | float):
            self.created = int(response["created_at"])
        return self._delta({"role": "assistant", "content": ""})

    def _item_added(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        item = member(data, "item")
        if item.get("type") != "function_call":
            return []
        index = len(self.by_output)
        self.by_output[count(data.get("output_index"))] = index
        if item.get("id"):
            self.by_item[str(item["id"])] = index
        call_id = str(item.get("call_id") or item.get("id") or "")
        chunks = self._delta(tool_call_start(index, call_id, str(item.get("name", ""))))
        if item.get("arguments"):
            self.streamed_arguments.add(index)
            chunks += self._delta(tool_call_arguments(index, str(item["arguments"])))
        return chunks

    def _text(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return self._delta({"content": data["delta"]}) if data.get("delta") else []

    def _refusal(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return self._delta({"refusal": data["delta"]}) if data.get("delta") else []

    def _arguments(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        index = self._index(data)
        if index is None or not data.get("delta"):
            return []
        self.streamed_arguments.add(index)
        return self._delta(tool_call_arguments(index, str(data["delta"])))

    def _arguments_done(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The whole arguments, sent only when no piece came before (a server that does not stream them)."""
        index = self._index(data)
        if index is None or index in self.streamed_arguments or not data.get("arguments"):
            return []
        self.streamed_arguments.add(index)
        return self._delta(tool_call_arguments(index, str(data["arguments"])))

    def _completed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self.final = member(data, "response")
        return []

    def _failed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        response = member(data, "response")
        return [_stream_error(response.get("error"))]

    def _error(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return [_stream_error(data.get("error") if isinstance(data.get("error"), dict) else data)]

    _handlers = {
        "response.created": _created,
        "response.output_item.added": _item_added,
        "response.output_text.delta": _text,
        "response.refusal.delta": _refusal,
        "response.function_call_arguments.delta": _arguments,
        "response.function_call_arguments.done": _arguments_done,
        "response.completed": _completed,
        "response.incomplete": _completed,
        "response.failed": _failed,
        "error": _error,
    }


OPENAI_RESPONSES = ResponsesAdapter()
