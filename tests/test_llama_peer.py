"""llama-cpp-python's server on a tiny generated GGUF: a real, independent OpenAI-compatible peer."""

from __future__ import annotations

import json

import httpx

from tests.conftest import LLAMA_ALIAS
from tests.support.tiny_gguf import N_EMBD

CHAT = {"model": LLAMA_ALIAS, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}


def test_models_lists_the_alias(llama_peer: str) -> None:
    response = httpx.get(f"{llama_peer}/models", timeout=10)
    assert response.status_code == 200
    assert LLAMA_ALIAS in [model["id"] for model in response.json()["data"]]


def test_chat_completion(llama_peer: str) -> None:
    response = httpx.post(f"{llama_peer}/chat/completions", json=CHAT, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert isinstance(body["choices"][0]["message"]["content"], str)
    assert body["usage"]["completion_tokens"] >= 1


def test_streamed_chat_completion(llama_peer: str) -> None:
    with httpx.stream("POST", f"{llama_peer}/chat/completions", json={**CHAT, "stream": True}, timeout=30) as response:
        assert response.status_code == 200
        data = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in data[:-1]]
    assert chunks
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)


def test_embeddings(llama_peer: str) -> None:
    response = httpx.post(
        f"{llama_peer}/embeddings", json={"model": LLAMA_ALIAS, "input": ["hello", "wörld"]}, timeout=30
    )
    assert response.status_code == 200, response.text
    vectors = [item["embedding"] for item in response.json()["data"]]
    assert len(vectors) == 2
    assert all(len(vector) == N_EMBD for vector in vectors)
