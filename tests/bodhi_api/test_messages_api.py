"""``POST /v1/messages`` through real processes, with the official Anthropic SDK as the client (its key sent as
``x-api-key``): an OpenAI-format API model on the fake provider (a chat completion there, Anthropic's events back as
they arrive), a local GGUF alias, and an Anthropic provider, to which the request passes through unchanged; tool
round trips, errors in Anthropic's shape, usage recorded."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import asyncpg
import httpx
import pytest

from tests.conftest import TEST_API_KEY, Gateway, RegisterUpstream
from tests.support.fake_anthropic import TOOL_ID, AnthropicScript, FakeAnthropic, message_body
from tests.support.fake_upstream import TOOL, FakeUpstream, Script, chunk_text

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HI: list[Any] = [{"role": "user", "content": "Hi"}]


@pytest.fixture
async def sdk(gateway: Gateway) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=gateway.admin_token, max_retries=0)
    yield client
    await client.close()


async def usage_rows(db: asyncpg.Connection, model: str, count: int) -> list[tuple[Any, ...]]:
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
    sdk: anthropic.AsyncAnthropic,
    fake_upstream: FakeUpstream,
    register_upstream: RegisterUpstream,
    db: asyncpg.Connection,
) -> None:
    script = Script(chunks=5, delay=0.3)
    model = await register_upstream(script)

    texts: list[str] = []
    first_at = None
    async with sdk.messages.stream(model=model, max_tokens=64, system="Be brief.", messages=HI) as stream:
        async for text in stream.text_stream:
            first_at = first_at or time.monotonic()
            texts.append(text)
        final = await stream.get_final_message()

    assert texts == [chunk_text(script, i) for i in range(5)]
    sent = fake_upstream.requests_for(model)[0]
    assert first_at is not None
    assert first_at < sent.chunk_times[-1] - 0.8  # the first text came long before the provider's last chunk
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert sent.body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert sent.body["max_tokens"] == 64
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, script.chunks)
    assert await usage_rows(db, model, 1) == [("messages", 5, script.chunks, "ok")]


async def test_a_whole_message_and_a_tool_round_trip(
    sdk: anthropic.AsyncAnthropic, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=2))
    question: list[Any] = [{"role": "user", "content": "The weather in Paris?"}]

    plain = await sdk.messages.create(model=model, max_tokens=32, messages=HI)
    async with sdk.messages.stream(model=model, max_tokens=32, messages=question, tools=[WEATHER]) as stream:  # type: ignore[list-item]
        called = await stream.get_final_message()
    [tool_use] = [block for block in called.content if block.type == "tool_use"]
    result = {"type": "tool_result", "tool_use_id": tool_use.id, "content": "21 C"}
    turns: list[Any] = [
        *question,
        {"role": "assistant", "content": called.content},
        {"role": "user", "content": [result]},
    ]
    answered = await sdk.messages.create(model=model, max_tokens=32, messages=turns)

    assert plain.type == "message"
    assert [(b.type, getattr(b, "text", None)) for b in plain.content] == [("text", "tok0 tok1 ")]
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (5, 2)
    assert called.stop_reason == "tool_use"
    assert (tool_use.name, tool_use.input, tool_use.id) == (TOOL["name"], {"city": "Paris"}, "toolu_call_fake")
    second = fake_upstream.requests_for(model)[2]
    assert second.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_fake", "type": "function", "function": dict(TOOL)}],
        },
        {"role": "tool", "tool_call_id": "call_fake", "content": "21 C"},
    ]
    assert [b.type for b in answered.content] == ["text"]


async def test_errors_are_anthropic_errors(
    gateway: Gateway, sdk: anthropic.AsyncAnthropic, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(status=429))
    stranger = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key="bodhi-not-a-token", max_retries=0)

    with pytest.raises(anthropic.AuthenticationError) as refused:
        await stranger.messages.create(model=model, max_tokens=8, messages=HI)
    with pytest.raises(anthropic.RateLimitError) as limited:
        await sdk.messages.create(model=model, max_tokens=8, messages=HI)
    with pytest.raises(anthropic.NotFoundError) as unknown:
        await sdk.messages.create(model=f"nothing-{uuid.uuid4().hex[:6]}", max_tokens=8, messages=HI)
    with pytest.raises(anthropic.BadRequestError) as invalid:
        await sdk.messages.create(model=model, max_tokens=8, messages=[{"role": "system", "content": "x"}])
    await stranger.close()

    for error, kind in (
        (refused, "authentication_error"),
        (limited, "rate_limit_error"),
        (unknown, "not_found_error"),
        (invalid, "invalid_request_error"),
    ):
        assert error.value.body["type"] == "error"  # type: ignore[index]
        assert error.value.body["error"]["type"] == kind  # type: ignore[index]
    assert "messages[0].role" in invalid.value.body["error"]["message"]  # type: ignore[index]


async def test_a_local_alias_answers_and_streams(sdk: anthropic.AsyncAnthropic, tiny_alias: str) -> None:
    whole = await sdk.messages.create(model=tiny_alias, max_tokens=4, messages=HI)
    async with sdk.messages.stream(model=tiny_alias, max_tokens=4, messages=HI) as stream:
        streamed = await stream.get_final_message()
    turns: list[Any] = [
        {"role": "user", "content": "The weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C"}]},
    ]
    after_tool = await sdk.messages.create(model=tiny_alias, max_tokens=4, messages=turns, tools=[WEATHER])  # type: ignore[list-item]

    for message in (whole, streamed, after_tool):
        assert message.model == tiny_alias
        assert message.stop_reason in ("end_turn", "max_tokens")
        assert message.usage.output_tokens > 0
        assert message.usage.input_tokens > 0


async def add_claude(client: httpx.AsyncClient, claude: FakeAnthropic, script: AnthropicScript) -> str:
    model = f"claude-{uuid.uuid4().hex[:6]}"
    claude.scripts[model] = script
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
    return model


async def test_an_anthropic_provider_gets_the_request_unchanged(
    sdk: anthropic.AsyncAnthropic, client: httpx.AsyncClient, claude: FakeAnthropic, db: asyncpg.Connection
) -> None:
    script = AnthropicScript()
    model = await add_claude(client, claude, script)
    sent: dict[str, Any] = {
        "model": model,
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": HI,
        "metadata": {"user_id": "u-1"},
    }
    unknown = {"top_k": 5, "service_tier": "auto"}  # fields chat completions has not: kept, as nothing is translated

    whole = await sdk.messages.create(**sent, extra_body=unknown)
    async with sdk.messages.stream(**sent, tools=[WEATHER], extra_body=unknown) as stream:  # type: ignore[list-item]
        events = [event.type async for event in stream]
        streamed = await stream.get_final_message()

    first, second = claude.requests_for(model)
    assert first.body == sent | unknown
    assert second.body == sent | unknown | {"tools": [WEATHER], "stream": True}
    assert first.headers["x-api-key"] == TEST_API_KEY
    assert "authorization" not in first.headers
    assert whole.model_dump(exclude_none=True) == anthropic.types.Message.model_validate(
        message_body(model, script, tool=False)
    ).model_dump(exclude_none=True)
    assert (events[0], events[-1]) == ("message_start", "message_stop")  # Anthropic's own, passed on as they came
    assert [b.type for b in streamed.content] == ["text", "tool_use"]
    assert streamed.content[1].id == TOOL_ID  # type: ignore[union-attr]
    expected = ("messages", script.input_tokens, script.output_tokens, "ok")
    assert await usage_rows(db, model, 2) == [expected, expected]


async def test_an_anthropic_providers_errors_pass_through(
    sdk: anthropic.AsyncAnthropic, client: httpx.AsyncClient, claude: FakeAnthropic
) -> None:
    refusing = await add_claude(client, claude, AnthropicScript(status=529, error_type="overloaded_error"))
    failing = await add_claude(client, claude, AnthropicScript(error_after=1))

    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await sdk.messages.create(model=refusing, max_tokens=8, messages=HI)
    texts: list[str] = []

    async def read_stream() -> None:
        async with sdk.messages.stream(model=failing, max_tokens=8, messages=HI) as stream:
            async for text in stream.text_stream:
                texts.append(text)

    with pytest.raises(anthropic.APIStatusError) as mid_stream:
        await read_stream()

    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"] == {"type": "overloaded_error", "message": "scripted failure"}  # type: ignore[index]
    assert texts == ["Hello"]
    assert mid_stream.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
