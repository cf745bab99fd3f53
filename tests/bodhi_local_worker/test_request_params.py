"""OpenAI bodies -> llama-cpp-python arguments."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from bodhi_local_worker.request_params import chat_params, completion_params, embedding_inputs, embeddings_body
from bodhi_shared.errors import InvalidRequest

MESSAGES = [{"role": "user", "content": "hi"}]


def test_chat_params_keep_what_llama_cpp_understands() -> None:
    params = chat_params(
        {
            "model": "tiny",
            "messages": MESSAGES,
            "max_completion_tokens": 5,
            "temperature": 1,
            "stop": "\n",
            "logit_bias": {"2": -100},
            "user": "ignored",
        }
    )
    assert params == {
        "messages": MESSAGES,
        "max_tokens": 5,
        "temperature": 1.0,
        "stop": ["\n"],
        "logit_bias": {2: -100.0},
    }


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": "hi"},
        {"messages": MESSAGES, "n": 2},
        {"messages": MESSAGES, "temperature": "hot"},
        {"messages": MESSAGES, "max_tokens": 1.5},
        {"messages": MESSAGES, "stop": [1]},
        {"messages": MESSAGES, "logit_bias": {"a": 1}},
    ],
)
def test_malformed_chat_bodies_are_invalid_requests(body: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        chat_params(body)


def test_embedding_inputs() -> None:
    assert embedding_inputs({"input": "one"}) == ["one"]
    assert embedding_inputs({"input": ["one", "two"]}) == ["one", "two"]
    with pytest.raises(InvalidRequest):
        embedding_inputs({"input": [[1, 2, 3]]})


def test_base64_embeddings_are_little_endian_float32() -> None:
    body = json.loads(embeddings_body({"encoding_format": "base64"}, [[1.0, -2.5]], model="m", prompt_tokens=3))
    assert struct.unpack("<2f", base64.b64decode(body["data"][0]["embedding"])) == (1.0, -2.5)
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_completion_params_keep_what_llama_cpp_understands() -> None:
    params = completion_params(
        {
            "model": "tiny",
            "prompt": ["Once upon"],
            "max_tokens": 5,
            "top_logprobs": 2,  # a chat field: not an argument of create_completion
            "logprobs": 1,
            "echo": True,
            "suffix": " the end",
            "stop": "\n",
            "stream_options": {"include_usage": True},
        }
    )
    assert params == {
        "prompt": "Once upon",
        "max_tokens": 5,
        "logprobs": 1,
        "echo": True,
        "suffix": " the end",
        "stop": ["\n"],
    }
    assert completion_params({"prompt": [[1, 2, 3]]}) == {"prompt": [1, 2, 3]}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": ["one", "two"]},
        {"prompt": []},
        {"prompt": [1, "two"]},
        {"prompt": [True]},
        {"prompt": "hi", "n": 2},
        {"prompt": "hi", "best_of": 3},
        {"prompt": "hi", "echo": 1},
        {"prompt": "hi", "suffix": 1},
        {"prompt": "hi", "logprobs": True},
        {"prompt": "hi", "max_tokens": "8"},
    ],
)
def test_malformed_completion_bodies_are_invalid_requests(body: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        completion_params(body)
