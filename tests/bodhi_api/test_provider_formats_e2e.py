"""API models of the `anthropic` and `openai-responses` formats, the whole way through real processes: the OpenAI
SDK -> the API -> Redis -> the remote worker (its adapter) -> a fake Anthropic / Responses provider on loopback,
streamed and not, with tools; what the provider receives (the translated request, its headers), what the client
gets, and the usage recorded. Extra headers and keyless API models too, for every format, and the provider checks.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from tests.conftest import Gateway
from tests.support.fake_anthropic import TOOL_ID, TOOL_INPUT, TOOL_NAME, AnthropicScript, FakeAnthropic
from tests.support.fake_responses import CALL_ID, TOOL_ARGUMENTS, FakeResponses, ResponsesScript
from tests.support.fake_upstream import FakeUpstream, Script

API = "/bodhi/v1/models/api"
ANTHROPIC_KEY = "sk-ant-e2e-" + "9" * 24
RESPONSES_KEY = "sk-resp-e2e-" + "8" * 24
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


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


@pytest.fixture
async def sdk(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token, max_retries=0)
    yield client
    await client.close()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    created = await client.post(API, json={"name": unique("fmt"), **fields})
    assert created.status_code == 201, created.text
    saved: dict[str, Any] = created.json()
    return saved


async def usage_row(db: asyncpg.Connection, model: str, count: int = 1) -> list[asyncpg.Record]:
    """The model's usage records, once ``count`` are written (the recorder writes every second)."""
    rows: list[asyncpg.Record] = []
    for _ in range(60):
        rows = await db.fetch(
            "SELECT endpoint, status, http_status, prompt_tokens, completion_tokens, total_tokens, api_model_id"
            " FROM usage_records WHERE model = $1 ORDER BY created_at",
            model,
        )
        if len(rows) >= count:
            break
        await asyncio.sleep(0.1)
    return rows


def anthropic_headers_are_right(headers: dict[str, str], *, key: str | None = ANTHROPIC_KEY) -> None:
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers  # never: Anthropic's key header is x-api-key
    if key is None:
        assert "x-api-key" not in headers
    else:
        assert headers["x-api-key"] == key


async def test_chat_completions_through_an_anthropic_api_model(
    client: httpx.AsyncClient, sdk: openai.AsyncOpenAI, claude: FakeAnthropic, db: asyncpg.Connection
) -> None:
    model = unique("claude")
    claude.scripts[model] = AnthropicScript(input_tokens=21, output_tokens=8)
    saved = await create(
        client,
        api_format="anthropic",
        base_url=claude.base_url,
        api_key=ANTHROPIC_KEY,
        models=[model],
        extra_headers={"anthropic-beta": "tools-2024-04-04"},
    )
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]

    answer = await sdk.chat.completions.create(
        model=model, messages=messages, max_completion_tokens=64, stop=["\n\n"], temperature=0.3
    )
    stream = await sdk.chat.completions.create(model=model, messages=messages, stream=True)
    chunks = [chunk async for chunk in stream]

    assert answer.choices[0].message.content == "Hello from Claude"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (21, 8, 29)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from Claude"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.choices for c in chunks)  # the client asked for no usage chunk: none reaches it

    plain, streamed = claude.requests_for(model)
    assert plain.path == "/v1/messages"
    assert plain.body == {
        "model": model,
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello."}],
        "stop_sequences": ["\n\n"],
        "temperature": 0.3,
    }
    assert streamed.body["stream"] is True
    assert streamed.body["max_tokens"] == 4096  # Anthropic requires one: the default when the chat sets none
    for request in (plain, streamed):
        anthropic_headers_are_right(request.headers)
        assert request.headers["anthropic-beta"] == "tools-2024-04-04"

    rows = await usage_row(db, model, 2)
    assert [(r["endpoint"], r["status"], r["http_status"]) for r in rows] == [("chat/completions", "ok", 200)] * 2
    assert [(r["prompt_tokens"], r["completion_tokens"], r["total_tokens"]) for r in rows] == [(21, 8, 29)] * 2
    assert {str(r["api_model_id"]) for r in rows} == {saved["id"]}


async def test_a_tool_round_trip_through_an_anthropic_api_model(
    client: httpx.AsyncClient, sdk: openai.AsyncOpenAI, claude: FakeAnthropic
) -> None:
    model = unique("claude-tools")
    claude.scripts[model] = AnthropicScript()
    await create(client, api_format="anthropic", base_url=claude.base_url, api_key=ANTHROPIC_KEY, models=[model])
    asked: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]

    called = await sdk.chat.completions.create(
        model=model,
        messages=asked,
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    stream = await sdk.chat.completions.create(
        model=model,
        messages=asked,
        tools=[WEATHER_TOOL],
        stream=True,
    )
    deltas = [c.choices[0].delta for c in [chunk async for chunk in stream] if c.choices]

    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (TOOL_ID, TOOL_NAME, TOOL_INPUT)  # type: ignore[union-attr]
    streamed_calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert (streamed_calls[0].id, streamed_calls[0].function.name) == (TOOL_ID, TOOL_NAME)  # type: ignore[union-attr]
    arguments = "".join(tc.function.arguments or "" for tc in streamed_calls if tc.function)
    assert json.loads(arguments) == TOOL_INPUT

    # The round trip: the assistant's call and the tool's result go back; the provider answers in text.
    follow_up: list[Any] = [
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    answered = await sdk.chat.completions.create(model=model, messages=follow_up, tools=[WEATHER_TOOL])
    assert answered.choices[0].message.content == "Hello from Claude"

    sent = claude.requests_for(model)
    assert sent[0].body["tools"] == [
        {
            "name": TOOL_NAME,
            "input_schema": WEATHER_TOOL["function"]["parameters"],
            "description": "The weather in a city",
        }
    ]
    assert sent[0].body["tool_choice"] == {"type": "auto"}
    assert sent[-1].body["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": TOOL_ID, "name": TOOL_NAME, "input": TOOL_INPUT}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": TOOL_ID, "content": "18C and sunny"}]},
    ]
    for request in sent:
        anthropic_headers_are_right(request.headers)


async def test_anthropic_errors_reach_the_client_in_openai_shape(
    client: httpx.AsyncClient, claude: FakeAnthropic
) -> None:
    model = unique("claude-errors")
    claude.scripts[model] = AnthropicScript(status=429, error_type="rate_limit_error")
    unknown = unique("claude-unknown")  # served by Bodhi, unknown to the provider
    await create(
        client, api_format="anthropic", base_url=claude.base_url, api_key=ANTHROPIC_KEY, models=[model, unknown]
    )
    hi = [{"role": "user", "content": "hi"}]

    limited = await client.post("/v1/chat/completions", json={"model": model, "messages": hi})
    missing = await client.post("/v1/chat/completions", json={"model": unknown, "messages": hi})
    refused = await client.post("/v1/chat/completions", json={"model": model, "messages": hi, "n": 2})
    embedded = await client.post("/v1/embeddings", json={"model": model, "input": "hi"})

    assert limited.status_code == 429
    assert limited.json()["error"] == {
        "message": "scripted failure",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "n")
    assert (embedded.status_code, embedded.json()["error"]["code"]) == (400, "unsupported_endpoint")
    assert ANTHROPIC_KEY not in limited.text + missing.text


async def test_chat_completions_through_an_openai_responses_api_model(
    client: httpx.AsyncClient, sdk: openai.AsyncOpenAI, responses_server: FakeResponses, db: asyncpg.Connection
) -> None:
    model = unique("gpt-responses")
    responses_server.scripts[model] = ResponsesScript(input_tokens=13, output_tokens=5)
    await create(
        client,
        api_format="openai-responses",
        base_url=responses_server.base_url,
        api_key=RESPONSES_KEY,
        models=[model],
        extra_headers={"OpenAI-Project": "proj_e2e"},
    )
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]

    answer = await sdk.chat.completions.create(model=model, messages=messages, max_tokens=50)
    stream = await sdk.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    called = await sdk.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])

    assert answer.choices[0].message.content == "Hello from Responses"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from Responses"
    assert chunks[-1].choices == []  # asked for: the usage chunk, last
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (13, 5)
    assert called.choices[0].finish_reason == "tool_calls"
    assert called.choices[0].message.tool_calls is not None
    call = called.choices[0].message.tool_calls[0]
    assert (call.id, call.function.arguments) == (CALL_ID, TOOL_ARGUMENTS)  # type: ignore[union-attr]

    plain, streamed, tooled = responses_server.requests_for(model)
    assert plain.path == "/v1/responses"
    assert plain.body == {
        "model": model,
        "input": [{"type": "message", "role": "user", "content": "Say hello."}],
        "store": False,
        "instructions": "Be brief.",
        "max_output_tokens": 50,
    }
    assert streamed.body["stream"] is True
    assert "stream_options" not in streamed.body
    assert tooled.body["tools"][0] | {"parameters": None} == {
        "type": "function",
        "name": TOOL_NAME,
        "description": "The weather in a city",
        "parameters": None,
        "strict": False,
    }
    for request in (plain, streamed, tooled):
        assert request.headers["authorization"] == f"Bearer {RESPONSES_KEY}"
        assert request.headers["openai-project"] == "proj_e2e"
    rows = await usage_row(db, model, 3)
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in rows[:2]] == [(13, 5), (13, 5)]


async def test_keyless_api_models_send_no_key_header(
    client: httpx.AsyncClient,
    sdk: openai.AsyncOpenAI,
    claude: FakeAnthropic,
    responses_server: FakeResponses,
    fake_upstream: FakeUpstream,
) -> None:
    models = {fmt: unique(f"local-{fmt}") for fmt in ("openai", "openai-responses", "anthropic")}
    fake_upstream.scripts[models["openai"]] = Script()
    responses_server.scripts[models["openai-responses"]] = ResponsesScript()
    claude.scripts[models["anthropic"]] = AnthropicScript()
    urls = {
        "openai": fake_upstream.base_url,
        "openai-responses": responses_server.base_url,
        "anthropic": claude.base_url,
    }
    for fmt, model in models.items():
        saved = await create(client, api_format=fmt, base_url=urls[fmt], models=[model])  # no api_key
        assert (saved["has_api_key"], saved["api_key_hint"]) == (False, "")
        answer = await sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content

    assert "authorization" not in fake_upstream.requests_for(models["openai"])[-1].headers
    assert "authorization" not in responses_server.requests_for(models["openai-responses"])[-1].headers
    anthropic_headers_are_right(claude.requests_for(models["anthropic"])[-1].headers, key=None)


async def test_extra_headers_reach_an_openai_provider_on_every_call(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    model = unique("with-headers")
    fake_upstream.scripts[model] = Script()
    headers = {"X-Team": "blue", "HTTP-Referer": "https://bodhi.example"}
    saved = await create(
        client, base_url=fake_upstream.base_url, api_key="sk-e2e-h", models=[model], extra_headers=headers
    )
    assert saved["extra_headers"] == headers
    assert (await client.get(f"{API}/{saved['id']}")).json()["extra_headers"] == headers

    chat = await client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    fetched = await client.post(f"{API}/fetch-models", json={"id": saved["id"]})
    tested = await client.post(f"{API}/test", json={"id": saved["id"], "model": model})

    assert chat.status_code == 200, chat.text
    assert fetched.status_code == 200, fetched.text
    assert tested.json()["success"] is True
    for request in (*fake_upstream.requests_for(model), fake_upstream.model_list_requests[-1]):
        assert (request.headers["x-team"], request.headers["http-referer"]) == ("blue", "https://bodhi.example")
        assert request.headers["authorization"] == "Bearer sk-e2e-h"  # an extra header never replaces the key's


async def test_provider_checks_speak_each_format(
    client: httpx.AsyncClient, claude: FakeAnthropic, responses_server: FakeResponses
) -> None:
    claude.models = ["claude-b", "claude-a"]
    claude.scripts["claude-a"] = AnthropicScript(pieces=["test successful"])
    claude.required_key = ANTHROPIC_KEY
    responses_server.models = ["gpt-y", "gpt-x"]
    responses_server.scripts["gpt-x"] = ResponsesScript(pieces=["test successful"])
    form = {"base_url": claude.base_url, "api_key": ANTHROPIC_KEY, "api_format": "anthropic"}
    try:
        fetched = await client.post(f"{API}/fetch-models", json=form)
        tested = await client.post(f"{API}/test", json=form | {"model": "claude-a"})
        wrong = await client.post(f"{API}/fetch-models", json=form | {"api_key": "sk-ant-wrong-key-0000"})
        gone = await client.post(f"{API}/test", json=form | {"model": "claude-gone"})
    finally:
        claude.required_key = None
    responses_form = {"base_url": responses_server.base_url, "api_format": "openai-responses"}  # keyless
    responses_fetched = await client.post(f"{API}/fetch-models", json=responses_form)
    responses_tested = await client.post(f"{API}/test", json=responses_form | {"model": "gpt-x"})

    assert fetched.json() == {"models": ["claude-a", "claude-b"]}
    assert claude.model_list_requests[-2].query == {"limit": "1000"}
    assert tested.json() == {"success": True, "response": "test successful"}
    sent = claude.requests_for("claude-a")[-1]
    assert (sent.body["max_tokens"], sent.path) == (16, "/v1/messages")
    anthropic_headers_are_right(sent.headers)
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert gone.json()["error_code"] == "model_not_found"
    assert responses_fetched.json() == {"models": ["gpt-x", "gpt-y"]}
    assert responses_tested.json() == {"success": True, "response": "test successful"}
    assert "authorization" not in responses_server.requests_for("gpt-x")[-1].headers
