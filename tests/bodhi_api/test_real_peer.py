"""A real, independent peer: llama-cpp-python's own OpenAI server on a generated GGUF, added as an API model."""

from __future__ import annotations

import uuid

import httpx
import openai

from tests.conftest import LLAMA_ALIAS, Gateway

API = "/bodhi/v1/models/api"


async def test_llama_server_as_an_api_model(gateway: Gateway, client: httpx.AsyncClient, llama_peer: str) -> None:
    prefix = f"llama-{uuid.uuid4().hex[:6]}/"
    fetched = await client.post(f"{API}/fetch-models", json={"base_url": llama_peer, "api_key": "sk-unused"})
    assert fetched.status_code == 200, fetched.text
    assert LLAMA_ALIAS in fetched.json()["models"]

    tested = await client.post(
        f"{API}/test", json={"base_url": llama_peer, "api_key": "sk-unused", "model": LLAMA_ALIAS}
    )
    assert tested.json()["success"] is True, tested.text
    assert isinstance(tested.json()["response"], str)

    created = await client.post(
        API,
        json={
            "name": "llama.cpp",
            "base_url": llama_peer,
            "api_key": "sk-unused",
            "prefix": prefix,
            "models": [LLAMA_ALIAS],
        },
    )
    assert created.status_code == 201, created.text

    sdk = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token)
    try:
        stream = await sdk.chat.completions.create(
            model=f"{prefix}{LLAMA_ALIAS}",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
        embedded = await sdk.embeddings.create(model=f"{prefix}{LLAMA_ALIAS}", input=["one", "two"])
    finally:
        await sdk.close()

    assert len(chunks) >= 2
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].usage is None  # asked upstream for usage; the client did not ask, so it was dropped
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    assert len(embedded.data) == 2
    assert len(embedded.data[0].embedding) > 0
