"""The fields no provider or local model can answer without are checked by the gateway: a 400 in the OpenAI error
shape naming the field, before any worker or provider sees the request. Through real processes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import RegisterUpstream
from tests.support.fake_upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("/v1/chat/completions", {}, "messages"),
        ("/v1/chat/completions", {"messages": None}, "messages"),
        ("/v1/chat/completions", {"messages": "hi"}, "messages"),
        ("/v1/chat/completions", {"messages": {"role": "user", "content": "hi"}}, "messages"),
        ("/v1/chat/completions", {"messages": [*MESSAGES, "and this"]}, "messages"),
        ("/v1/chat/completions", {"messages": MESSAGES, "tools": ["get_weather"]}, "tools"),
        ("/v1/chat/completions", {"messages": MESSAGES, "tools": TOOL}, "tools"),
        ("/v1/chat/completions", {"messages": MESSAGES, "stream": True, "tools": [TOOL, 7]}, "tools"),
        ("/v1/completions", {}, "prompt"),
        ("/v1/completions", {"prompt": {"text": "hi"}}, "prompt"),
        ("/v1/embeddings", {}, "input"),
        ("/v1/embeddings", {"input": 42}, "input"),
    ],
)
async def test_a_missing_or_misshapen_field_is_a_400_naming_it(
    client: httpx.AsyncClient,
    register_upstream: RegisterUpstream,
    fake_upstream: FakeUpstream,
    *,
    path: str,
    fields: dict[str, Any],
    param: str,
) -> None:
    """Before, the body went to the provider as it was (the fake one answered it; a real one, or a local model,
    failed on it: a 500 from a worker)."""
    model = await register_upstream()
    response = await client.post(path, json={"model": model, **fields})

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert f"`{param}" in error["message"]
    assert fake_upstream.requests_for(model) == []


async def test_tools_null_and_unknown_fields_still_pass_through(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    model = await register_upstream()
    body = {"model": model, "messages": MESSAGES, "tools": None, "some_future_field": {"kept": [1, 2]}}
    response = await client.post("/v1/chat/completions", json=body)

    assert response.status_code == 200, response.text
    assert fake_upstream.requests_for(model)[0].body == body
