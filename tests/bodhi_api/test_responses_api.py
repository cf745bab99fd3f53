"""``POST /v1/responses`` through real processes, with the official OpenAI SDK as the client: an OpenAI-format API
model on the fake provider (the request reaches it as a chat completion, the stream comes back as it arrives), a
local GGUF alias, an Anthropic provider; tool round trips, ``previous_response_id``, and stored responses read
back and deleted."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import openai
import pytest
from openai.types.responses import ResponseFunctionToolCall

from tests.conftest import TEST_API_KEY, Gateway, RegisterUpstream
from tests.support.fake_anthropic import AnthropicScript, FakeAnthropic
from tests.support.fake_responses import FakeResponses, ResponsesScript
from tests.support.fake_upstream import TOOL, FakeUpstream, Script, chunk_text

WEATHER: Any = {  # a FunctionToolParam, as the SDK takes it
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
async def sdk(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token, max_retries=0)
    yield client
    await client.close()


async def usage_rows(db: asyncpg.Connection, model: str, count: int) -> list[tuple[Any, ...]]:
    """The usage records of ``model`` once there are ``count`` of them (they are written every second)."""
    deadline = time.monotonic() + 10
    while True:
        rows = await db.fetch(
            "SELECT endpoint, prompt_tokens, completion_tokens, status FROM usage_records WHERE model = $1"
            " ORDER BY created_at",
            model,
        )
        if len(rows) >= count or time.monotonic() > deadline:
            return [tuple(r) for r in rows]
        await asyncio.sleep(0.2)


async def test_a_stream_arrives_as_the_provider_sends_it(
    sdk: openai.AsyncOpenAI, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream, db: asyncpg.Connection
) -> None:
    script = Script(chunks=5, delay=0.3)
    model = await register_upstream(script)

    stream = await sdk.responses.create(model=model, input="Hi", instructions="Be brief.", stream=True)
    deltas: list[str] = []
    first_at = None
    final = None
    async for event in stream:
        if event.type == "response.output_text.delta":
            first_at = first_at or time.monotonic()
            deltas.append(event.delta)
        elif event.type == "response.completed":
            final = event.response

    assert deltas == [chunk_text(script, i) for i in range(5)]
    sent = fake_upstream.requests_for(model)[0]
    assert first_at is not None
    assert first_at < sent.chunk_times[-1] - 0.8  # the first text came long before the provider's last chunk
    assert sent.path == "/v1/chat/completions"  # an OpenAI-format provider gets a chat completion
    assert sent.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert sent.body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert sent.body["stream_options"] == {"include_usage": True}
    assert final is not None
    assert final.output_text == "".join(deltas)
    assert final.usage is not None
    assert final.usage.output_tokens == script.chunks
    assert await usage_rows(db, model, 1) == [("responses", 5, script.chunks, "ok")]


async def test_a_whole_response_is_stored_read_back_continued_and_deleted(
    sdk: openai.AsyncOpenAI, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=2))

    first = await sdk.responses.create(model=model, input="Hi")
    second = await sdk.responses.create(model=model, input="And then?", previous_response_id=first.id)
    read_back = await sdk.responses.retrieve(first.id)
    await sdk.responses.delete(first.id)

    assert first.object == "response"
    assert first.status == "completed"
    assert first.output_text == "tok0 tok1 "
    assert read_back.model_dump() == first.model_dump()
    assert second.previous_response_id == first.id
    assert fake_upstream.requests_for(model)[1].body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "tok0 tok1 "},
        {"role": "user", "content": "And then?"},
    ]
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):  # a deleted response cannot be continued either
        await sdk.responses.create(model=model, input="More", previous_response_id=first.id)


async def test_a_tool_round_trip(
    sdk: openai.AsyncOpenAI, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=1))
    question: list[Any] = [{"role": "user", "content": "The weather in Paris?"}]

    called = await sdk.responses.create(model=model, input=question, tools=[WEATHER], stream=True)
    items = [e.item async for e in called if e.type == "response.output_item.done"]
    [call] = [item for item in items if isinstance(item, ResponseFunctionToolCall)]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": '{"celsius": 21}'}
    turns: list[Any] = [*question, call, output]
    answered = await sdk.responses.create(model=model, input=turns, store=False)

    assert (call.name, call.arguments, call.call_id) == (TOOL["name"], TOOL["arguments"], "call_fake")
    first, second = fake_upstream.requests_for(model)
    assert first.body["tools"] == [
        {
            "type": "function",
            "function": {k: v for k, v in WEATHER.items() if k != "type"},
        }
    ]
    assert second.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_fake", "type": "function", "function": dict(TOOL)}],
        },
        {"role": "tool", "tool_call_id": "call_fake", "content": '{"celsius": 21}'},
    ]
    assert answered.output_text == "tok0 "


async def test_errors_before_the_answer_are_openai_errors(
    sdk: openai.AsyncOpenAI, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(status=429))

    with pytest.raises(openai.RateLimitError):
        await sdk.responses.create(model=model, input="Hi")
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model=model, input="Hi", tools=[{"type": "web_search"}])
    assert refused.value.body["param"] == "tools[0].type"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.create(model=model, input="Hi", previous_response_id=f"resp_{uuid.uuid4().hex}")


async def test_a_local_alias_answers_and_streams(sdk: openai.AsyncOpenAI, tiny_alias: str) -> None:
    whole = await sdk.responses.create(model=tiny_alias, input="Say hello.", max_output_tokens=4)
    events = [e async for e in await sdk.responses.create(model=tiny_alias, input="Say hello.", stream=True)]
    history: list[Any] = [
        {"role": "user", "content": "The weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"celsius": 21}'},
    ]
    after_tool = await sdk.responses.create(model=tiny_alias, input=history, tools=[WEATHER], max_output_tokens=4)

    assert whole.status in ("completed", "incomplete")
    assert whole.model == tiny_alias
    assert whole.usage is not None
    assert 0 < whole.usage.output_tokens <= 4
    assert events[0].type == "response.created"
    assert events[-1].type in ("response.completed", "response.incomplete")
    final = events[-1].response
    assert final.usage is not None
    assert final.usage.output_tokens > 0
    if final.status == "incomplete":  # cut short by the alias's max_tokens (8), as max_output_tokens
        assert final.incomplete_details is not None
        assert final.incomplete_details.reason == "max_output_tokens"
    assert after_tool.status in ("completed", "incomplete")
    assert (await sdk.responses.retrieve(after_tool.id)).id == after_tool.id  # stored as for any model


async def test_an_anthropic_provider_answers_the_responses_api(
    sdk: openai.AsyncOpenAI, client: httpx.AsyncClient, claude: FakeAnthropic
) -> None:
    model = f"claude-{uuid.uuid4().hex[:6]}"
    claude.scripts[model] = AnthropicScript(pieces=["Bonjour", " !"])
    created = await client.post(
        "/bodhi/v1/models/api",
        json={
            "name": f"claude for {model}",
            "api_format": "anthropic",
            "base_url": claude.base_url,
            "api_key": TEST_API_KEY,
            "models": [model],
        },
    )
    assert created.status_code == 201, created.text

    whole = await sdk.responses.create(model=model, input="Salut", max_output_tokens=50)
    deltas = [
        e.delta
        async for e in await sdk.responses.create(model=model, input="Salut", stream=True)
        if e.type == "response.output_text.delta"
    ]

    assert whole.output_text == "Bonjour !"
    assert deltas == ["Bonjour", " !"]
    seen = claude.requests_for(model)[0]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == TEST_API_KEY
    assert seen.body["messages"] == [{"role": "user", "content": "Salut"}]
    assert seen.body["max_tokens"] == 50


@pytest.fixture
def responses_provider() -> Iterator[FakeResponses]:
    server = FakeResponses()
    server.start()
    yield server
    server.stop()


async def test_a_responses_provider_gets_the_request_as_sent(
    sdk: openai.AsyncOpenAI,
    client: httpx.AsyncClient,
    responses_provider: FakeResponses,
    register_upstream: RegisterUpstream,
    db: asyncpg.Connection,
) -> None:
    model = f"resp-{uuid.uuid4().hex[:6]}"
    responses_provider.scripts[model] = ResponsesScript()
    created = await client.post(
        "/bodhi/v1/models/api",
        json={
            "name": f"responses for {model}",
            "api_format": "openai-responses",
            "base_url": responses_provider.base_url,
            "api_key": TEST_API_KEY,
            "models": [model],
        },
    )
    assert created.status_code == 201, created.text
    earlier = await sdk.responses.create(model=await register_upstream(Script(chunks=1)), input="Hi")

    events = [
        e
        async for e in await sdk.responses.create(
            model=model,
            input="Go on",
            previous_response_id=earlier.id,
            reasoning={"effort": "low"},
            include=["reasoning.encrypted_content"],  # a field only the Responses API has: sent as it is
            stream=True,
        )
    ]

    whole = await sdk.responses.create(model=model, input="Hi", store=False)

    seen, whole_seen = responses_provider.requests_for(model)
    assert whole.output_text == "Hello from Responses"
    assert whole_seen.body == {"model": model, "input": "Hi", "store": False}
    assert seen.path == "/v1/responses"
    assert seen.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert seen.body == {
        "model": model,
        "input": [
            {"type": "message", "role": "user", "content": "Hi"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "tok0 "}]},
            {"type": "message", "role": "user", "content": "Go on"},
        ],
        "reasoning": {"effort": "low"},
        "include": ["reasoning.encrypted_content"],
        "stream": True,
        "store": False,  # Bodhi keeps the conversation; previous_response_id was expanded, not forwarded
    }
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Hello from Responses"
    script = responses_provider.scripts[model]
    expected = ("responses", script.input_tokens, script.output_tokens, "ok")
    assert await usage_rows(db, model, 2) == [expected, expected]
