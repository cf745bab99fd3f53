"""The Responses API over chat completions: requests in, answers and event streams out, checked with the OpenAI
SDK's own types and its ``responses.stream`` accumulation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from bodhi_shared.api_formats import RESPONSES, translation_for
from bodhi_shared.api_formats.responses import input_items_of, request_to_chat, response_from_chat
from bodhi_shared.errors import InvalidRequest
from tests.bodhi_shared.api_formats.frames import USAGE, chunk, completion, openai_client, parse_frames, tool_call_delta

EVENT = TypeAdapter[Any](ResponseStreamEvent)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def stream(
    chunks: list[dict[str, Any]], *, usage: dict[str, Any] | None = None, request: dict[str, Any] | None = None
) -> bytes:
    translator = RESPONSES.stream_translator(model="alias", request_id="r1", request=request or {"model": "alias"})
    return b"".join(translator.feed(c) for c in chunks) + translator.finish(usage)


def checked_events(raw: bytes) -> list[dict[str, Any]]:
    """Every event validated by the SDK's types, numbered 0, 1, 2, ... in order."""
    events = [data for _, data in parse_frames(raw)]
    for data in events:
        assert EVENT.validate_python(data).type == data["type"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# --- requests --------------------------------------------------------------------------------------------------


def test_string_input_with_instructions_and_settings() -> None:
    chat = request_to_chat(
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": "Hello",
            "max_output_tokens": 64,
            "temperature": 0.2,
            "top_p": 0.9,
            "stream": True,
            "store": False,
            "metadata": {"k": "v"},
            "previous_response_id": "resp_old",
            "reasoning": {"effort": "low"},
        }
    )
    assert chat == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_message_items_with_content_parts() -> None:
    chat = request_to_chat(
        {
            "model": "m",
            "input": [
                {"role": "developer", "content": "Answer in French."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "Un chat."}]},
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Sure?"}, {"type": "input_text", "text": "Really?"}],
                },
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
            ],
        },
        {"role": "assistant", "content": "Un chat."},
        {"role": "user", "content": "Sure?\nReally?"},
    ]
    assert "stream" not in chat


def test_function_calls_and_outputs_round_trip() -> None:
    chat = request_to_chat(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {
                    "type": "function_call_output",
                    "call_id": "call_2",
                    "output": [{"type": "input_text", "text": "25C"}],
                },
            ],
            "tools": [WEATHER_TOOL],
        }
    )
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "25C"},
    ]


def test_tools_and_tool_choice() -> None:
    chat = request_to_chat(
        {
            "model": "m",
            "input": "hi",
            "tools": [{**WEATHER_TOOL, "strict": True}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": False,
        }
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER_TOOL["parameters"],
                "strict": True,
            },
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False
    assert (
        request_to_chat({"model": "m", "input": "hi", "tools": [WEATHER_TOOL], "tool_choice": "required"})[
            "tool_choice"
        ]
        == "required"
    )


def test_tool_choice_without_tools_is_left_out() -> None:
    chat = request_to_chat(
        {"model": "m", "input": "hi", "tools": [], "tool_choice": "auto", "parallel_tool_calls": True}
    )
    assert "tool_choice" not in chat
    assert "parallel_tool_calls" not in chat
    assert "tools" not in chat


def test_text_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat = request_to_chat(
        {
            "model": "m",
            "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}},
        }
    )
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    json_object = request_to_chat({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}})
    assert json_object["response_format"] == {"type": "json_object"}
    assert "response_format" not in request_to_chat({"model": "m", "input": "hi", "text": {"format": {"type": "text"}}})


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 42}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["hi"]}, "input[0]"),
        ({"model": "m", "input": [{"role": ["user"], "content": "hi"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output"),
        ({"model": "m", "input": "hi", "tools": "get_weather"}, "tools"),
        ({"model": "m", "input": "hi", "tools": ["get_weather"]}, "tools[0]"),
        ({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "m", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "hi", "tools": [WEATHER_TOOL], "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"model": "m", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "hi", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "hi", "instructions": ["be brief"]}, "instructions"),
        ({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        (
            {"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "out"}}},
            "text.format.schema",
        ),
        ({"model": "m", "input": "hi", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"model": "m", "input": "hi", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "hi", "background": True}, "background"),
        ({"model": "m", "input": "hi", "conversation": "conv_1"}, "conversation"),
    ],
)
def test_malformed_requests_are_refused_with_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        request_to_chat(body)
    assert raised.value.param == param
    assert raised.value.status_code == 400
    assert raised.value.message.startswith(f"{param}: ")


def test_hosted_tools_are_refused_by_name() -> None:
    with pytest.raises(InvalidRequest, match="`web_search_preview` are not supported"):
        request_to_chat({"model": "m", "input": "hi", "tools": [WEATHER_TOOL, {"type": "web_search_preview"}]})


# --- stored responses -> input items -----------------------------------------------------------------------------


def test_a_previous_response_becomes_input_items() -> None:
    previous = response_from_chat(
        completion(
            {
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            finish_reason="tool_calls",
        ),
        request_id="r0",
    )
    items = input_items_of(previous)
    assert items == [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]},
        {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
    ]
    new_input = [
        {"role": "user", "content": "Oslo?"},
        *items,
        {"type": "function_call_output", "call_id": "call_9", "output": "-3C"},
    ]
    messages = request_to_chat({"model": "m", "input": new_input})["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_9", "content": "-3C"}


# --- whole answers -----------------------------------------------------------------------------------------------


def test_a_completion_becomes_a_response() -> None:
    request = {
        "model": "alias",
        "input": "hi",
        "instructions": "Be brief.",
        "tools": [WEATHER_TOOL],
        "temperature": 0.5,
    }
    body = RESPONSES.response_from_chat(completion({"content": "Hello there."}), request_id="r1", request=request)
    response = Response.model_validate(body)
    assert response.id == "resp_r1"
    assert response.status == "completed"
    assert response.output_text == "Hello there."
    assert response.output[0].id == "msg_r1_0"
    assert response.instructions == "Be brief."
    assert [tool.name for tool in response.tools] == ["get_weather"]  # type: ignore[union-attr]
    assert response.temperature == 0.5
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (11, 7, 18)
    assert json.loads(json.dumps(body)) == body


def test_tool_calls_become_function_call_items() -> None:
    chat = completion(
        {
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ],
        },
        finish_reason="tool_calls",
    )
    response = Response.model_validate(response_from_chat(chat, request_id="r1"))
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.call_id, c.arguments) for c in calls] == [("call_1", '{"city":"Paris"}'), ("call_2", "{}")]
    assert all(c.id and c.id.startswith("fc_") for c in calls)
    assert response.model == "upstream-model"


def test_a_completion_cut_short_is_incomplete() -> None:
    response = Response.model_validate(
        response_from_chat(completion({"content": "Once upon"}, finish_reason="length"), request_id="r1")
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]


def test_error_body_is_openai_shaped() -> None:
    error = {"message": "No model", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}
    assert RESPONSES.error_body(404, error) == {"error": error}


def test_translation_for_endpoints() -> None:
    assert translation_for("responses") is RESPONSES
    assert translation_for("messages") is not None
    assert translation_for("messages").endpoint == "messages"  # type: ignore[union-attr]
    for endpoint in ("chat/completions", "embeddings", "completions"):
        assert translation_for(endpoint) is None


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
    raw = stream(TEXT_CHUNKS)
    events = checked_events(raw)
    assert types_of(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["id"] == "resp_r1"
    assert events[7]["text"] == "Hello, wörld"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "completed"
    assert final.output_text == "Hello, wörld"
    assert final.model == "alias"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (12, 5, 17)


def test_the_sdk_accumulates_a_text_stream() -> None:
    with openai_client(stream(TEXT_CHUNKS)) as client, client.responses.stream(model="alias", input="hi") as events:
        deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
        final = events.get_final_response()
    assert "".join(deltas) == "Hello, wörld"
    assert final.output_text == "Hello, wörld"
    assert final.id == "resp_r1"


TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": "Checking."}),
    chunk(tool_call_delta(0, call_id="call_abc", name="get_weather")),
    chunk(tool_call_delta(0, arguments='{"ci')),
    chunk(tool_call_delta(0, arguments='ty": "Pa')),
    chunk(tool_call_delta(0, arguments='ris"}')),
    chunk({}, finish_reason="tool_calls", usage=USAGE),
]


def test_a_tool_call_stream() -> None:
    events = checked_events(stream(TOOL_CHUNKS))
    assert types_of(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = events[8]
    assert added["output_index"] == 1
    assert added["item"] == {
        "id": "fc_r1_1",
        "type": "function_call",
        "call_id": "call_abc",
        "name": "get_weather",
        "arguments": "",
        "status": "in_progress",
    }
    assert events[12]["arguments"] == '{"city": "Paris"}'
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["status"] == "completed"
    assert final["usage"]["input_tokens"] == 12


def test_the_sdk_accumulates_a_tool_call_stream() -> None:
    tools: Any = [{**WEATHER_TOOL, "strict": True}]
    raw = stream(TOOL_CHUNKS, request={"model": "alias", "tools": tools})
    with openai_client(raw) as client, client.responses.stream(model="alias", input="hi", tools=tools) as events:
        snapshots = [event.snapshot for event in events if event.type == "response.function_call_arguments.delta"]
        final = events.get_final_response()
    assert snapshots[-1] == '{"city": "Paris"}'
    call = final.output[1]
    assert call.type == "function_call"
    assert call.parsed_arguments == {"city": "Paris"}
    assert final.tools[0].name == "get_weather"  # type: ignore[union-attr]


def test_parallel_tool_calls_interleaved_reach_their_items() -> None:
    chunks = [
        chunk(tool_call_delta(0, call_id="call_a", name="get_weather", arguments='{"city":')),
        chunk(tool_call_delta(1, call_id="call_b", name="get_weather", arguments='{"city":')),
        chunk(tool_call_delta(0, arguments='"Paris"}')),
        chunk(tool_call_delta(1, arguments='"Rome"}')),
        chunk({}, finish_reason="tool_calls"),
    ]
    events = checked_events(stream(chunks))
    final = Response.model_validate(events[-1]["response"])
    assert [(item.call_id, item.arguments) for item in final.output] == [  # type: ignore[union-attr]
        ("call_a", '{"city":"Paris"}'),
        ("call_b", '{"city":"Rome"}'),
    ]
    with openai_client(stream(chunks)) as client, client.responses.stream(model="alias", input="hi") as sdk_events:
        accumulated = sdk_events.get_final_response()
    assert [item.arguments for item in accumulated.output] == ['{"city":"Paris"}', '{"city":"Rome"}']  # type: ignore[union-attr]


def test_a_whole_tool_call_in_one_chunk_without_index() -> None:
    call = {"id": "call_x", "type": "function", "function": {"name": "now", "arguments": ""}}
    events = checked_events(
        stream([chunk({"role": "assistant", "tool_calls": [call]}), chunk({}, finish_reason="stop")])
    )
    final = events[-1]["response"]
    assert final["output"][0]["call_id"] == "call_x"
    assert final["output"][0]["arguments"] == "{}"  # no arguments: an empty object, so they parse


def test_a_stream_cut_short_ends_incomplete() -> None:
    events = checked_events(stream([chunk({"content": "Once upon"}), chunk({}, finish_reason="length")], usage=USAGE))
    assert events[-1]["type"] == "response.incomplete"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "incomplete"
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    assert final.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert final.usage is not None
    assert final.usage.output_tokens == 5


def test_usage_given_to_finish_wins_and_none_means_zeros() -> None:
    with_usage = checked_events(stream(TEXT_CHUNKS, usage={"prompt_tokens": 1, "completion_tokens": 2}))
    assert with_usage[-1]["response"]["usage"]["total_tokens"] == 3
    without = checked_events(stream(TEXT_CHUNKS[:-1]))
    assert without[-1]["response"]["usage"]["total_tokens"] == 0


def test_an_empty_stream_still_completes() -> None:
    events = checked_events(stream([]))
    assert types_of(events) == ["response.created", "response.in_progress", "response.completed"]
    assert events[-1]["response"]["output"] == []


def test_a_failure_mid_stream_is_response_failed() -> None:
    translator = RESPONSES.stream_translator(model="alias", request_id="r1", request={"model": "alias"})
    raw = translator.feed(chunk({"content": "Partial"}))
    raw += translator.error(
        502, {"message": "upstream went away", "type": "api_error", "param": None, "code": "upstream_error"}
    )
    assert translator.feed(chunk({"content": "late"})) == b""
    assert translator.finish(USAGE) == b""
    events = checked_events(raw)
    assert events[-1]["type"] == "response.failed"
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed"
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == ("server_error", "upstream went away")
    assert failed.output[0].status == "incomplete"  # type: ignore[union-attr]
    with openai_client(raw) as client, client.responses.stream(model="alias", input="hi") as sdk_events:
        assert [event.type for event in sdk_events][-1] == "response.failed"


def test_a_failure_before_any_chunk_still_opens_the_response() -> None:
    translator = RESPONSES.stream_translator(model="alias", request_id="r1", request={"model": "alias"})
    events = checked_events(translator.error(429, {"message": "slow down", "type": "rate_limit_error"}))
    assert types_of(events) == ["response.created", "response.in_progress", "response.failed"]
    assert events[-1]["response"]["error"]["code"] == "rate_limit_exceeded"
