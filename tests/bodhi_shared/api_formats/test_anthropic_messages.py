"""Anthropic Messages over chat completions: requests in, messages and event streams out, checked with the
Anthropic SDK's own types and its ``messages.stream`` accumulation."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from bodhi_shared.api_formats import MESSAGES, translation_for
from bodhi_shared.api_formats.anthropic_messages import message_from_chat, request_to_chat
from bodhi_shared.errors import InvalidRequest
from tests.bodhi_shared.api_formats.frames import (
    USAGE,
    anthropic_client,
    chunk,
    completion,
    parse_frames,
    tool_call_delta,
)

EVENT = TypeAdapter[Any](RawMessageStreamEvent)
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
USER = {"role": "user", "content": "Hi"}


def stream(chunks: list[dict[str, Any]], *, usage: dict[str, Any] | None = None) -> bytes:
    translator = MESSAGES.stream_translator(model="alias", request_id="r1", request={"model": "alias"})
    return b"".join(translator.feed(c) for c in chunks) + translator.finish(usage)


def checked_events(raw: bytes) -> list[dict[str, Any]]:
    events = [data for _, data in parse_frames(raw)]
    for data in events:
        assert EVENT.validate_python(data).type == data["type"]
    return events


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def sdk_final_message(raw: bytes) -> tuple[str, Message]:
    """The text the SDK streamed and the message it accumulated."""
    with anthropic_client(raw) as client, client.messages.stream(model="alias", max_tokens=10, messages=[USER]) as s:  # type: ignore[list-item]
        text = "".join(s.text_stream)
        return text, s.get_final_message()


# --- requests --------------------------------------------------------------------------------------------------


def test_system_messages_and_settings() -> None:
    chat = request_to_chat(
        {
            "model": "m",
            "max_tokens": 256,
            "system": [
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be kind."},
            ],
            "messages": [
                USER,
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": [{"type": "text", "text": "Bye"}]},
            ],
            "stop_sequences": ["END"],
            "temperature": 0.3,
            "top_p": 0.8,
            "top_k": 40,
            "stream": True,
            "metadata": {"user_id": "u1"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        }
    )
    assert chat == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief.\nBe kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"},
        ],
        "max_tokens": 256,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["END"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_images_become_image_url_parts() -> None:
    chat = request_to_chat(
        {
            "model": "m",
            "max_tokens": 10,
            "system": "Describe.",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                        {"type": "text", "text": "What are these?"},
                    ],
                }
            ],
        }
    )
    assert chat["messages"][1] == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "text", "text": "What are these?"},
        ],
    }


def test_tool_use_and_tool_result_round_trip() -> None:
    chat = request_to_chat(
        {
            "model": "m",
            "max_tokens": 100,
            "tools": [WEATHER_TOOL],
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_call_1", "name": "get_weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "toolu_01XYZ", "name": "get_weather", "input": {"city": "Rome"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_call_1", "content": "18C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01XYZ",
                            "is_error": True,
                            "content": [
                                {"type": "text", "text": "station down"},
                                {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}},
                            ],
                        },
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "01XYZ",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "01XYZ", "content": "Error: station down"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER_TOOL["input_schema"],
            },
        }
    ]


def test_a_turn_of_only_tool_results_is_only_tool_messages() -> None:
    chat = request_to_chat(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                USER,
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
            ],
        }
    )
    assert chat["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "1", "type": "function", "function": {"name": "now", "arguments": "{}"}}],
    }
    assert chat["messages"][2:] == [{"role": "tool", "tool_call_id": "1", "content": ""}]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
    ],
)
def test_tool_choices(tool_choice: dict[str, Any], expected: dict[str, Any]) -> None:
    chat = request_to_chat(
        {"model": "m", "max_tokens": 10, "messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": tool_choice}
    )
    assert {key: chat.get(key) for key in ("tool_choice", "parallel_tool_calls") if key in chat} == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": [USER]}, "max_tokens"),
        ({"model": "m", "max_tokens": "ten", "messages": [USER]}, "max_tokens"),
        ({"model": "m", "max_tokens": 10}, "messages"),
        ({"model": "m", "max_tokens": 10, "messages": "Hi"}, "messages"),
        ({"model": "m", "max_tokens": 10, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 10, "messages": ["Hi"]}, "messages[0]"),
        ({"model": "m", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {
                "model": "m",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}],
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "model": "m",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}],
            },
            "messages[0].content[0].source.type",
        ),
        (
            {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "messages[0].content[0].tool_use_id",
        ),
        ({"model": "m", "max_tokens": 10, "messages": [USER], "system": [{"type": "image"}]}, "system[0].type"),
        ({"model": "m", "max_tokens": 10, "messages": [USER], "tools": ["get_weather"]}, "tools[0]"),
        (
            {
                "model": "m",
                "max_tokens": 10,
                "messages": [USER],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools[0].type",
        ),
        ({"model": "m", "max_tokens": 10, "messages": [USER], "tools": [{"name": "f"}]}, "tools[0].input_schema"),
        (
            {
                "model": "m",
                "max_tokens": 10,
                "messages": [USER],
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "some"},
            },
            "tool_choice.type",
        ),
        ({"model": "m", "max_tokens": 10, "messages": [USER], "stop_sequences": "END"}, "stop_sequences"),
    ],
)
def test_malformed_requests_are_refused_with_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        request_to_chat(body)
    assert raised.value.param == param
    assert raised.value.message.startswith(f"{param}: ")  # the Anthropic body has no `param`: the message says it


# --- whole answers -----------------------------------------------------------------------------------------------


def test_a_completion_becomes_a_message() -> None:
    message = Message.model_validate(MESSAGES.response_from_chat(completion({"content": "Hello!"}), request_id="r1"))
    assert message.id == "msg_r1"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello!"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)


def test_cached_prompt_tokens_are_cache_reads_not_input_tokens() -> None:
    usage = {"prompt_tokens": 40, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 32}}
    answer = completion({"content": "Hello!"}) | {"usage": usage}
    message = Message.model_validate(MESSAGES.response_from_chat(answer, request_id="r1"))
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        8,
        32,
        7,
    )
    streamed = checked_events(stream(TEXT_CHUNKS, usage=usage))
    assert streamed[-2]["usage"] == {"input_tokens": 8, "output_tokens": 7, "cache_read_input_tokens": 32}


def test_tool_calls_become_tool_use_blocks() -> None:
    chat = completion(
        {
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "not json"}},
            ],
        },
        finish_reason="stop",  # llama.cpp's chat handlers end a tool-calling turn with `stop`
    )
    message = Message.model_validate(message_from_chat(chat, request_id="r1"))
    assert message.stop_reason == "tool_use"
    blocks = [block for block in message.content if block.type == "tool_use"]
    assert [(b.id, b.name, b.input) for b in blocks] == [
        ("toolu_call_1", "get_weather", {"city": "Paris"}),
        ("toolu_2", "get_weather", {}),
    ]


@pytest.mark.parametrize(
    ("choice", "stop_reason", "stop_sequence"),
    [
        ({"finish_reason": "length"}, "max_tokens", None),
        ({"finish_reason": "content_filter"}, "refusal", None),
        ({"finish_reason": "stop", "stop_reason": "END"}, "stop_sequence", "END"),  # vLLM names the stop string
        ({"finish_reason": None}, "end_turn", None),
    ],
)
def test_stop_reasons(choice: dict[str, Any], stop_reason: str, stop_sequence: str | None) -> None:
    chat = completion({"content": "text"})
    chat["choices"][0] |= choice
    message = Message.model_validate(message_from_chat(chat, request_id="r1"))
    assert (message.stop_reason, message.stop_sequence) == (stop_reason, stop_sequence)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
    ],
)
def test_error_bodies_are_anthropic_shaped(status: int, error_type: str) -> None:
    body = MESSAGES.error_body(status, {"message": "it broke", "type": "api_error", "param": None, "code": None})
    assert body == {"type": "error", "error": {"type": error_type, "message": "it broke"}}
    ErrorResponse.model_validate(body)


def test_translation_for_messages() -> None:
    assert translation_for("messages") is MESSAGES


# --- streams -----------------------------------------------------------------------------------------------------

TEXT_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo, "}),
    chunk({"content": "wörld"}),
    chunk({}, finish_reason="stop"),
    chunk(None, usage=USAGE),
]


def test_a_text_stream() -> None:
    events = checked_events(stream(TEXT_CHUNKS))
    assert types_of(events) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]["message"]
    assert (start["id"], start["model"], start["content"], start["usage"]) == (
        "msg_r1",
        "alias",
        [],
        {"input_tokens": 0, "output_tokens": 0},
    )
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"] == {"input_tokens": 12, "output_tokens": 5}
    text, message = sdk_final_message(stream(TEXT_CHUNKS))
    assert text == "Hello, wörld"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello, wörld"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 5)


def test_a_tool_call_stream() -> None:
    chunks = [
        chunk({"role": "assistant", "content": "Checking."}),
        chunk(tool_call_delta(0, call_id="call_abc", name="get_weather")),
        chunk(tool_call_delta(0, arguments='{"ci')),
        chunk(tool_call_delta(0, arguments='ty": "Pa')),
        chunk(tool_call_delta(0, arguments='ris"}')),
        chunk({}, finish_reason="tool_calls", usage=USAGE),
    ]
    events = checked_events(stream(chunks))
    assert types_of(events) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[4] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_call_abc", "name": "get_weather", "input": {}},
    }
    assert events[5]["delta"] == {"type": "input_json_delta", "partial_json": '{"ci'}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    _, message = sdk_final_message(stream(chunks))
    tool_use = message.content[1]
    assert tool_use.type == "tool_use"
    assert (tool_use.id, tool_use.name, tool_use.input) == ("toolu_call_abc", "get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"


def test_two_tool_calls_are_two_blocks() -> None:
    chunks = [
        chunk(tool_call_delta(0, call_id="call_a", name="get_weather", arguments='{"city":"Paris"}')),
        chunk(tool_call_delta(1, call_id="call_b", name="get_weather", arguments='{"city":"Rome"}')),
        chunk({}, finish_reason="tool_calls"),
    ]
    _, message = sdk_final_message(stream(chunks))
    assert [block.input for block in message.content if block.type == "tool_use"] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]


def test_a_stream_cut_short_is_max_tokens_and_usage_none_is_zeros() -> None:
    events = checked_events(stream([chunk({"content": "Once upon"}), chunk({}, finish_reason="length")]))
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2]["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_an_empty_stream_still_ends() -> None:
    assert types_of(checked_events(stream([]))) == ["message_start", "message_delta", "message_stop"]


def test_a_failure_mid_stream_is_an_error_event() -> None:
    translator = MESSAGES.stream_translator(model="alias", request_id="r1", request={"model": "alias"})
    raw = translator.feed(chunk({"content": "Partial"}))
    raw += translator.error(
        503, {"message": "no worker", "type": "api_error", "param": None, "code": "service_unavailable"}
    )
    assert translator.finish(USAGE) == b""
    frames = parse_frames(raw)
    assert frames[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "no worker"}})
    ErrorResponse.model_validate(frames[-1][1])
    with pytest.raises(anthropic.APIStatusError, match="no worker"):
        sdk_final_message(raw)
