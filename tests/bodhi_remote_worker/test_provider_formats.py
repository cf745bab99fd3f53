"""The provider adapters (chat completions <-> Anthropic Messages, <-> the OpenAI Responses API): requests, answers,
streams and errors, pure; then their HTTP calls and provider checks against fake providers on loopback.

The provider events fed here are the fakes' (tests/support), which are held to the anthropic and openai SDKs' own
event types; every chunk and completion the adapters make is held to the openai SDK's chat types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from bodhi_remote_worker import provider_checks
from bodhi_remote_worker.provider_formats import ADAPTERS, ProviderAdapter, adapter_for
from bodhi_remote_worker.provider_formats.anthropic import ANTHROPIC, DEFAULT_MAX_TOKENS
from bodhi_remote_worker.provider_formats.calls import forward_adapted, serving_adapter, stream_adapted
from bodhi_remote_worker.provider_formats.openai_responses import OPENAI_RESPONSES
from bodhi_remote_worker.upstream import Provider
from bodhi_shared.contract import ProviderCheckJob, Upstream, pack, unpack
from bodhi_shared.errors import (
    InvalidRequest,
    ProviderAuthenticationFailed,
    ProviderCheckFailed,
    UpstreamError,
    UpstreamHTTPError,
)
from tests.support.fake_anthropic import (
    TOOL_ID,
    TOOL_INPUT,
    TOOL_NAME,
    AnthropicScript,
    FakeAnthropic,
    message_body,
    message_events,
)
from tests.support.fake_responses import (
    CALL_ID,
    TOOL_ARGUMENTS,
    FakeResponses,
    ResponsesScript,
    response_body,
    response_events,
)

KEY = "sk-ant-format-" + "s3cr3t" * 4
ANTHROPIC_EVENT = TypeAdapter[Any](RawMessageStreamEvent)
RESPONSES_EVENT = TypeAdapter[Any](ResponseStreamEvent)
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def tool_round_trip() -> list[dict[str, Any]]:
    """A conversation with a system prompt, a tool call, two tool results and a follow-up question."""
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": TOOL_NAME, "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": TOOL_NAME, "arguments": '{"city": "Rome"}'}},
    ]
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
        {"role": "user", "content": "Which is warmer?"},
    ]


def fed(adapter: ProviderAdapter, events: list[tuple[str, dict[str, Any]]], *, model: str = "m") -> list[Any]:
    """Every chunk an adapter's stream makes of ``events``, then its closing ones, each a valid chat chunk."""
    stream = adapter.chat_stream(model=model)
    chunks = [out for event, data in events for out in stream.feed(event, data)]
    if not any("error" in c for c in chunks):
        chunks += stream.finish()
    return [c if "error" in c else ChatCompletionChunk.model_validate(c) for c in chunks]


def assembled(chunks: list[ChatCompletionChunk]) -> dict[str, Any]:
    """What a client makes of a stream: the text, the tool calls by index, the finish reason, the usage."""
    text, finish, usage = "", None, None
    calls: dict[int, dict[str, Any]] = {}
    for c in chunks:
        usage = c.usage or usage
        for choice in c.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] = (call.function.name if call.function else None) or entry["name"]
                entry["arguments"] += (call.function.arguments if call.function else None) or ""
    return {"text": text, "tool_calls": calls, "finish": finish, "usage": usage}


def anthropic_events(script: AnthropicScript | None = None, *, tool: bool = False) -> list[tuple[str, dict[str, Any]]]:
    events = message_events("claude-test", script or AnthropicScript(), tool=tool)
    for name, data in events:  # the fake's events are Anthropic's
        if name not in ("ping", "error"):
            ANTHROPIC_EVENT.validate_python(data)
    return events


def responses_events(script: ResponsesScript | None = None, *, tool: bool = False) -> list[tuple[str, dict[str, Any]]]:
    events = response_events({"model": "gpt-test"}, script or ResponsesScript(), tool=tool)
    for event in events:
        RESPONSES_EVENT.validate_python(event)
    return [(event["type"], event) for event in events]


# --- which adapter ------------------------------------------------------------------------------------------------


def test_the_format_and_headers_travel_with_the_job() -> None:
    upstream = Upstream(
        base_url="https://api.anthropic.com/v1",
        key_row="row",
        sealed_key=b"\x02sealed",
        api_format="anthropic",
        extra_headers={"anthropic-beta": "x"},
    )
    job = ProviderCheckJob(request_id="r", channel="c", upstream=upstream, pickup_deadline=1.0)
    back = ProviderCheckJob.from_wire(unpack(pack(job.to_wire())))
    assert (back.upstream.api_format, back.upstream.extra_headers) == ("anthropic", {"anthropic-beta": "x"})
    older = job.to_wire()  # a job from an API that predates formats: OpenAI, no headers
    del older["upstream"]["api_format"], older["upstream"]["extra_headers"]
    assert ProviderCheckJob.from_wire(older).upstream.api_format == "openai"


def test_each_format_has_its_adapter() -> None:
    assert adapter_for("openai") is None
    assert adapter_for("anthropic") is ANTHROPIC
    assert adapter_for("openai-responses") is OPENAI_RESPONSES
    assert {a.native_endpoint for a in ADAPTERS.values()} == {"messages", "responses"}
    with pytest.raises(UpstreamError, match="upgrade the remote workers"):
        adapter_for("gemini")


def test_adapted_api_models_serve_chat_completions_only() -> None:
    provider = Provider(base_url="http://x/v1", api_key="", api_format="anthropic", api_model_name="Claude")
    assert serving_adapter(provider, "chat/completions") is ANTHROPIC
    with pytest.raises(InvalidRequest, match="API model `Claude` speaks the `anthropic` API format") as caught:
        serving_adapter(provider, "embeddings")
    assert caught.value.status_code == 400


# --- Anthropic: the request ---------------------------------------------------------------------------------------


def test_anthropic_request_carries_system_tools_and_a_tool_round_trip() -> None:
    chat = {
        "model": "claude-test",
        "messages": tool_round_trip(),
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "max_completion_tokens": 300,
        "stop": "END",
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "alice",
        "seed": 7,  # no Anthropic equivalent: dropped
    }
    path, body = ANTHROPIC.request_from_chat(chat)

    assert path == "messages"
    assert body == {
        "model": "claude-test",
        "max_tokens": 300,
        "system": "You are terse.\n\nAnswer in English.",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": TOOL_NAME, "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": TOOL_NAME, "input": {"city": "Rome"}},
                ],
            },
            {  # both tool results and the next question: one user turn, the results first
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "25C"},
                    {"type": "text", "text": "Which is warmer?"},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "metadata": {"user_id": "alice"},
        "tools": [
            {
                "name": TOOL_NAME,
                "input_schema": WEATHER_TOOL["function"]["parameters"],
                "description": "The weather in a city",
            }
        ],
        "tool_choice": {"type": "any"},
    }


def test_anthropic_request_defaults_max_tokens_and_passes_images() -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    _, body = ANTHROPIC.request_from_chat(
        {"model": "claude-test", "messages": [{"role": "user", "content": content}], "stream": True, "max_tokens": 5}
    )
    assert body["max_tokens"] == 5
    assert body["stream"] is True
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    _, plain = ANTHROPIC.request_from_chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert plain == {"model": "m", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("chat", "expected"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": {"type": "function", "function": {"name": TOOL_NAME}}}, {"type": "tool", "name": TOOL_NAME}),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        ({"tool_choice": "required", "parallel_tool_calls": False}, {"type": "any", "disable_parallel_tool_use": True}),
        ({}, None),
    ],
)
def test_anthropic_tool_choice(chat: dict[str, Any], expected: dict[str, Any] | None) -> None:
    messages = [{"role": "user", "content": "hi"}]
    _, body = ANTHROPIC.request_from_chat({"model": "m", "messages": messages, "tools": [WEATHER_TOOL], **chat})
    assert body.get("tool_choice") == expected


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
            "messages",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{"}}]}
                ]
            },
            "messages",
        ),
        ({"messages": [{"role": "tool", "content": "no id"}]}, "messages"),
        ({"messages": [{"role": "function", "content": "old"}]}, "messages"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": [1]}, "stop"),
        ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_anthropic_refuses_what_it_cannot_express(change: dict[str, Any], param: str) -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **change}
    with pytest.raises(InvalidRequest) as caught:
        ANTHROPIC.request_from_chat(chat)
    assert caught.value.param == param
    assert caught.value.status_code == 400


def test_anthropic_headers_carry_the_key_in_x_api_key_never_authorization() -> None:
    assert ANTHROPIC.headers(KEY) == {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    assert ANTHROPIC.headers("") == {"anthropic-version": "2023-06-01"}  # keyless: no key header at all


# --- Anthropic: answers, streams, errors ---------------------------------------------------------------------------


def test_anthropic_answer_becomes_a_chat_completion() -> None:
    script = AnthropicScript(input_tokens=10, output_tokens=5, cache_read_input_tokens=3)
    body = message_body("claude-test", script, tool=False)
    Message.model_validate(body)
    completion = ChatCompletion.model_validate(ANTHROPIC.chat_from_response(body, model="claude-test"))

    assert completion.choices[0].message.content == "Hello from Claude"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        13,
        5,
        18,
    )
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 3


def test_anthropic_tool_use_answer_becomes_tool_calls() -> None:
    completion = ChatCompletion.model_validate(
        ANTHROPIC.chat_from_response(message_body("claude-test", AnthropicScript(), tool=True), model="claude-test")
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (TOOL_ID, TOOL_NAME, TOOL_INPUT)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("refusal", "content_filter")],
)
def test_anthropic_stop_reasons(stop_reason: str, finish: str) -> None:
    body = message_body("m", AnthropicScript(stop_reason=stop_reason), tool=False)
    assert ANTHROPIC.chat_from_response(body, model="m")["choices"][0]["finish_reason"] == finish
    chunks = fed(ANTHROPIC, anthropic_events(AnthropicScript(stop_reason=stop_reason)))
    assert assembled(chunks)["finish"] == finish


def test_anthropic_stream_becomes_chat_chunks() -> None:
    chunks = fed(ANTHROPIC, anthropic_events(AnthropicScript(input_tokens=11, output_tokens=6)))
    result = assembled(chunks)

    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["Hello", " from", " Claude"]
    assert result["text"] == "Hello from Claude"
    assert result["finish"] == "stop"
    assert chunks[-1].choices == []  # the usage-only chunk, last
    assert result["usage"].model_dump(exclude_none=True) == {
        "prompt_tokens": 11,
        "completion_tokens": 6,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert {c.id for c in chunks} == {"msg_fake01"}


def test_anthropic_streamed_tool_use_is_streamed_as_openai_does() -> None:
    chunks = fed(ANTHROPIC, anthropic_events(tool=True))
    tool_chunks = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    first = tool_chunks[0].choices[0].delta.tool_calls[0]
    assert (first.index, first.id, first.type, first.function.name, first.function.arguments) == (
        0,
        TOOL_ID,
        "function",
        TOOL_NAME,
        "",
    )
    rest = [c.choices[0].delta.tool_calls[0] for c in tool_chunks[1:]]
    assert all(call.id is None and call.function.name is None for call in rest)
    result = assembled(chunks)
    assert json.loads(result["tool_calls"][0]["arguments"]) == TOOL_INPUT
    assert result["finish"] == "tool_calls"
    assert result["text"] == "Let me check."


def test_anthropic_in_band_error_and_an_early_end() -> None:
    chunks = fed(ANTHROPIC, anthropic_events(AnthropicScript(error_after=1)))
    assert chunks[-1] == {
        "error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}
    }
    stream = ANTHROPIC.chat_stream(model="m")
    for event, data in anthropic_events()[:4]:  # cut after the first text delta
        stream.feed(event, data)
    with pytest.raises(UpstreamError, match="ended the stream early"):
        stream.finish()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            404,
            {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-nope"}},
            {
                "message": "model: claude-nope",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            },
        ),
        (
            429,
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
            {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"},
        ),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"},
        ),
    ],
)
def test_anthropic_errors_become_openai_errors(status: int, body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert ANTHROPIC.error_from_provider(status, json.dumps(body).encode()) == expected


def test_unreadable_error_bodies_become_openai_errors() -> None:
    for adapter in (ANTHROPIC, OPENAI_RESPONSES):
        assert adapter.error_from_provider(502, b"<html>Bad gateway</html>")["message"] == "upstream answered HTTP 502"
        assert adapter.error_from_provider(500, b"oops")["message"] == "upstream answered HTTP 500: oops"


# --- the Responses API ------------------------------------------------------------------------------------------


def test_responses_request_carries_instructions_items_and_flattened_tools() -> None:
    chat = {
        "model": "gpt-test",
        "messages": [
            *tool_round_trip(),
            {"role": "assistant", "content": "Rome."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}},
        "max_tokens": 200,
        "temperature": 0.5,
        "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    path, body = OPENAI_RESPONSES.request_from_chat(chat)

    assert path == "responses"
    assert body == {
        "model": "gpt-test",
        "store": False,
        "instructions": "You are terse.\n\nAnswer in English.",
        "input": [
            {"type": "message", "role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "function_call", "call_id": "call_1", "name": TOOL_NAME, "arguments": '{"city": "Paris"}'},
            {"type": "function_call", "call_id": "call_2", "name": TOOL_NAME, "arguments": '{"city": "Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C, sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": "25C"},
            {"type": "message", "role": "user", "content": "Which is warmer?"},
            {"type": "message", "role": "assistant", "content": "Rome."},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}],
            },
        ],
        "max_output_tokens": 200,
        "temperature": 0.5,
        "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}}},
        "tools": [
            {
                "type": "function",
                "name": TOOL_NAME,
                "description": "The weather in a city",
                "parameters": WEATHER_TOOL["function"]["parameters"],
                "strict": False,
            }
        ],
        "tool_choice": {"type": "function", "name": TOOL_NAME},
        "stream": True,
    }


@pytest.mark.parametrize(
    ("change", "param"),
    [({"n": 3}, "n"), ({"stop": ["x"]}, "stop"), ({"response_format": {"type": "json_schema"}}, "response_format")],
)
def test_responses_refuses_what_it_cannot_express(change: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        OPENAI_RESPONSES.request_from_chat({"model": "m", "messages": [], **change})
    assert caught.value.param == param


def test_responses_answer_becomes_a_chat_completion() -> None:
    body = response_body({"model": "gpt-test"}, ResponsesScript(), tool=False)
    Response.model_validate(body)
    completion = ChatCompletion.model_validate(OPENAI_RESPONSES.chat_from_response(body, model="gpt-test"))
    assert completion.choices[0].message.content == "Hello from Responses"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 4)

    called = OPENAI_RESPONSES.chat_from_response(
        response_body({"model": "gpt-test"}, ResponsesScript(), tool=True), model="gpt-test"
    )
    message = ChatCompletion.model_validate(called).choices[0]
    assert message.finish_reason == "tool_calls"
    assert message.message.content is None
    assert message.message.tool_calls is not None
    assert message.message.tool_calls[0].id == CALL_ID
    cut = response_body({"model": "gpt-test"}, ResponsesScript(incomplete=True), tool=False)
    assert OPENAI_RESPONSES.chat_from_response(cut, model="m")["choices"][0]["finish_reason"] == "length"


def test_responses_stream_becomes_chat_chunks() -> None:
    chunks = fed(OPENAI_RESPONSES, responses_events())
    result = assembled(chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert result["text"] == "Hello from Responses"
    assert result["finish"] == "stop"
    assert (result["usage"].prompt_tokens, result["usage"].completion_tokens, result["usage"].total_tokens) == (
        9,
        4,
        13,
    )
    assert {c.id for c in chunks} == {"resp_fake01"}

    called = assembled(fed(OPENAI_RESPONSES, responses_events(tool=True)))
    assert called["tool_calls"] == {0: {"id": CALL_ID, "name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}}
    assert called["finish"] == "tool_calls"
    assert assembled(fed(OPENAI_RESPONSES, responses_events(ResponsesScript(incomplete=True))))["finish"] == "length"


def test_responses_failures_end_the_stream_with_an_error() -> None:
    chunks = fed(OPENAI_RESPONSES, responses_events(ResponsesScript(fail_after=1)))
    assert chunks[-1] == {
        "error": {
            "message": "The model failed mid-answer.",
            "type": "server_error",
            "param": None,
            "code": "server_error",
        }
    }
    error = {
        "type": "error",
        "code": "rate_limit_exceeded",
        "message": "Slow down",
        "param": None,
        "sequence_number": 1,
    }
    assert OPENAI_RESPONSES.chat_stream(model="m").feed("error", error) == [
        {"error": {"message": "Slow down", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}}
    ]
    stream = OPENAI_RESPONSES.chat_stream(model="m")
    for event, data in responses_events()[:4]:
        stream.feed(event, data)
    with pytest.raises(UpstreamError, match="ended the stream early"):
        stream.finish()


def test_responses_errors_keep_openai_fields() -> None:
    body = {
        "error": {
            "message": "No such model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert OPENAI_RESPONSES.error_from_provider(404, json.dumps(body).encode()) == body["error"]
    assert OPENAI_RESPONSES.headers(KEY) == {"Authorization": f"Bearer {KEY}"}
    assert OPENAI_RESPONSES.headers("") == {}


# --- over HTTP, against the fakes ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def responses_server() -> Iterator[FakeResponses]:
    server = FakeResponses()
    server.start()
    yield server
    server.stop()


def test_the_anthropic_fake_speaks_anthropic_to_its_sdk(claude: FakeAnthropic) -> None:
    claude.scripts["claude-sdk"] = AnthropicScript()
    claude.models = ["claude-sdk", "claude-other"]
    hi = [{"role": "user", "content": "hi"}]
    with anthropic.Anthropic(api_key=KEY, base_url=claude.base_url.removesuffix("/v1"), max_retries=0) as client:
        message = client.messages.create(model="claude-sdk", max_tokens=10, messages=hi)  # type: ignore[arg-type]
        assert message.content[0].text == "Hello from Claude"  # type: ignore[union-attr]
        with client.messages.stream(model="claude-sdk", max_tokens=10, messages=hi) as stream:  # type: ignore[arg-type]
            assert stream.get_final_text() == "Hello from Claude"
        assert [m.id for m in client.models.list()] == ["claude-sdk", "claude-other"]


def test_the_responses_fake_speaks_responses_to_its_sdk(responses_server: FakeResponses) -> None:
    responses_server.scripts["gpt-sdk"] = ResponsesScript()
    with openai.OpenAI(api_key=KEY, base_url=responses_server.base_url, max_retries=0) as client:
        assert client.responses.create(model="gpt-sdk", input="hi").output_text == "Hello from Responses"
        with client.responses.stream(model="gpt-sdk", input="hi") as stream:
            assert stream.get_final_response().output_text == "Hello from Responses"


def anthropic_provider(server: FakeAnthropic, key: str = KEY, **extra: str) -> Provider:
    return Provider(
        base_url=server.base_url, api_key=key, api_model_name="Claude", api_format="anthropic", extra_headers=extra
    )


async def test_anthropic_calls_send_the_key_and_extra_headers_their_way(claude: FakeAnthropic) -> None:
    claude.scripts["claude-call"] = AnthropicScript()
    provider = anthropic_provider(claude, **{"anthropic-beta": "tools-2024", "X-Team": "blue"})
    chat = {"model": "claude-call", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient() as client:
        body = await forward_adapted(client, provider, ANTHROPIC, json.dumps(chat).encode(), client_request_id="r-1")
        streamed = [
            json.loads(p)
            async for p in stream_adapted(
                client, provider, ANTHROPIC, json.dumps({**chat, "stream_options": {"include_usage": True}}).encode()
            )
        ]

    assert ChatCompletion.model_validate_json(body).choices[0].message.content == "Hello from Claude"
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in streamed if c["choices"]) == "Hello from Claude"
    )
    assert streamed[-1]["usage"]["completion_tokens"] == 7  # asked for: the usage chunk comes last
    for request in claude.requests_for("claude-call"):
        assert request.path == "/v1/messages"
        assert request.headers["x-api-key"] == KEY
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert "authorization" not in request.headers
        assert (request.headers["anthropic-beta"], request.headers["x-team"]) == ("tools-2024", "blue")
    assert claude.requests_for("claude-call")[0].headers["x-request-id"] == "r-1"


async def test_anthropic_call_failures(claude: FakeAnthropic) -> None:
    claude.scripts["claude-busy"] = AnthropicScript(status=529, error_type="overloaded_error")
    claude.scripts["claude-cut"] = AnthropicScript(error_after=1)
    claude.required_key = KEY
    try:
        async with httpx.AsyncClient() as client:
            with pytest.raises(UpstreamHTTPError) as missing:
                await forward_adapted(
                    client, anthropic_provider(claude), ANTHROPIC, b'{"model": "claude-nope", "messages": []}'
                )
            with pytest.raises(UpstreamHTTPError) as busy:
                await forward_adapted(
                    client, anthropic_provider(claude), ANTHROPIC, b'{"model": "claude-busy", "messages": []}'
                )
            with pytest.raises(ProviderAuthenticationFailed):
                await forward_adapted(
                    client, anthropic_provider(claude, "sk-wrong"), ANTHROPIC, b'{"model": "claude-busy"}'
                )
            cut = [
                p
                async for p in stream_adapted(client, anthropic_provider(claude), ANTHROPIC, b'{"model": "claude-cut"}')
            ]
    finally:
        claude.required_key = None

    assert missing.value.status_code == 404
    assert json.loads(missing.value.to_json())["error"]["code"] == "model_not_found"
    assert busy.value.status_code == 529
    assert json.loads(busy.value.to_json())["error"]["code"] == "overloaded"
    assert json.loads(cut[-1]) == {
        "error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}
    }


async def test_a_keyless_anthropic_provider_gets_no_key_header(claude: FakeAnthropic) -> None:
    claude.scripts["claude-local"] = AnthropicScript()
    async with httpx.AsyncClient() as client:
        await forward_adapted(
            client, anthropic_provider(claude, ""), ANTHROPIC, b'{"model": "claude-local", "messages": []}'
        )
    headers = claude.requests_for("claude-local")[-1].headers
    assert "x-api-key" not in headers
    assert "authorization" not in headers


async def test_responses_calls(responses_server: FakeResponses) -> None:
    responses_server.scripts["gpt-call"] = ResponsesScript()
    provider = Provider(
        base_url=responses_server.base_url,
        api_key=KEY,
        api_format="openai-responses",
        extra_headers={"OpenAI-Project": "p1"},
    )
    chat = {"model": "gpt-call", "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL]}
    async with httpx.AsyncClient() as client:
        body = await forward_adapted(client, provider, OPENAI_RESPONSES, json.dumps(chat).encode())
        streamed = [
            json.loads(p) async for p in stream_adapted(client, provider, OPENAI_RESPONSES, json.dumps(chat).encode())
        ]

    assert ChatCompletion.model_validate_json(body).choices[0].finish_reason == "tool_calls"
    assert all(c["choices"] for c in streamed)  # no usage chunk: the body did not ask for one
    assert streamed[-1]["choices"][0]["finish_reason"] == "tool_calls"
    for request in responses_server.requests_for("gpt-call"):
        assert request.path == "/v1/responses"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["openai-project"] == "p1"
        assert request.body["store"] is False


# --- provider checks per format -----------------------------------------------------------------------------------


async def test_anthropic_checks(claude: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider_checks, "ANTHROPIC_PAGE_SIZE", 2)
    claude.models = ["claude-c", "Claude-A", "claude-b", "claude-d", "claude-e"]
    claude.scripts["claude-check"] = AnthropicScript(pieces=["test successful"])
    claude.required_key = KEY
    checked = {"base_url": claude.base_url, "api_format": "anthropic", "extra_headers": {"X-Team": "blue"}}
    try:
        async with httpx.AsyncClient() as client:
            models = await provider_checks.list_models(client, api_key=KEY, **checked)  # type: ignore[arg-type]
            reply = await provider_checks.test_connection(client, api_key=KEY, model="claude-check", **checked)  # type: ignore[arg-type]
            with pytest.raises(ProviderCheckFailed) as unknown:
                await provider_checks.test_connection(client, api_key=KEY, model="claude-gone", **checked)  # type: ignore[arg-type]
            with pytest.raises(ProviderCheckFailed) as refused:
                await provider_checks.list_models(client, api_key="sk-wrong", **checked)  # type: ignore[arg-type]
    finally:
        claude.required_key = None

    assert models == ["Claude-A", "claude-b", "claude-c", "claude-d", "claude-e"]
    assert [r.query for r in claude.model_list_requests[-4:-1]] == [  # three pages, then the refused listing
        {"limit": "2"},
        {"limit": "2", "after_id": "Claude-A"},
        {"limit": "2", "after_id": "claude-d"},
    ]
    assert reply == "test successful"
    sent = claude.requests_for("claude-check")[-1]
    assert sent.body == {
        "model": "claude-check",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": provider_checks.TEST_PROMPT}],
    }
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["x-team"] == "blue"
    assert "authorization" not in sent.headers
    assert unknown.value.code == "model_not_found"
    assert refused.value.code == "invalid_api_key"


async def test_responses_checks(responses_server: FakeResponses) -> None:
    responses_server.models = ["gpt-b", "gpt-a"]
    responses_server.scripts["gpt-check"] = ResponsesScript(pieces=["test successful"])
    async with httpx.AsyncClient() as client:
        models = await provider_checks.list_models(
            client, base_url=responses_server.base_url, api_key="", api_format="openai-responses"
        )
        reply = await provider_checks.test_connection(
            client, base_url=responses_server.base_url, api_key=KEY, model="gpt-check", api_format="openai-responses"
        )
    assert models == ["gpt-a", "gpt-b"]
    assert "authorization" not in responses_server.model_list_requests[-1].headers  # keyless
    assert reply == "test successful"
    sent = responses_server.requests_for("gpt-check")[-1]
    assert (sent.path, sent.body["max_output_tokens"], sent.body["input"]) == (
        "/v1/responses",
        16,
        [{"type": "message", "role": "user", "content": provider_checks.TEST_PROMPT}],
    )
