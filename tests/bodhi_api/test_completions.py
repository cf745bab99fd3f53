"""``POST /v1/completions`` (legacy text completions) through real processes, with the OpenAI SDK: an API model
(API -> Redis -> remote worker -> the fake upstream's `/v1/completions`) and a local alias (a local worker running
the tiny GGUF), streamed and not, each with its usage recorded under the endpoint `completions`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from tests.bodhi_api.test_local_models import LocalWorkers, add_alias
from tests.conftest import Gateway, RegisterUpstream
from tests.support.fake_upstream import USAGE_PROMPT_TOKENS, FakeUpstream, Script
from tests.support.tiny_gguf import write_tiny_llama_gguf


@pytest.fixture
async def sdk(gateway: Gateway) -> Any:
    client = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=gateway.admin_token)
    yield client
    await client.close()


async def usage_rows(db: asyncpg.Connection, model: str, count: int, *, ok_only: bool = False) -> list[asyncpg.Record]:
    """The model's usage records (``ok_only``: of answered requests), once ``count`` are written (the recorder
    writes every second)."""
    rows: list[asyncpg.Record] = []
    for _ in range(50):
        rows = await db.fetch(
            "SELECT endpoint, status, http_status, prompt_tokens, completion_tokens, total_tokens FROM usage_records"
            " WHERE model = $1 AND (NOT $2 OR http_status = 200) ORDER BY created_at",
            model,
            ok_only,
        )
        if len(rows) >= count:
            break
        await asyncio.sleep(0.1)
    return rows


async def test_an_api_model_completes_a_prompt_streamed_and_not(
    sdk: openai.AsyncOpenAI, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream, db: asyncpg.Connection
) -> None:
    """Before, `/v1/completions` was a 404 (and the remote worker had no such endpoint)."""
    model = await register_upstream(Script(chunks=3, text="word"))

    answered = await sdk.completions.create(model=model, prompt="Once upon a time", max_tokens=5)
    stream = await sdk.completions.create(model=model, prompt=["Once upon a time"], max_tokens=5, stream=True)
    chunks = [chunk async for chunk in stream]

    assert answered.object == "text_completion"
    assert answered.choices[0].text == "word0 word1 word2 "
    assert answered.choices[0].finish_reason == "stop"
    assert answered.usage is not None
    assert answered.usage.prompt_tokens == USAGE_PROMPT_TOKENS
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "word0 word1 word2 "
    assert all(c.choices for c in chunks)  # the usage chunk the gateway asked for is not relayed
    plain, streamed = fake_upstream.requests_for(model)
    assert plain.path == streamed.path == "/v1/completions"
    assert plain.body == {"model": model, "prompt": "Once upon a time", "max_tokens": 5}
    assert streamed.body["stream_options"] == {"include_usage": True}  # for the usage record
    rows = await usage_rows(db, model, 2)
    assert [(r["endpoint"], r["status"], r["http_status"]) for r in rows] == [("completions", "ok", 200)] * 2
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [(USAGE_PROMPT_TOKENS, 3)] * 2


async def test_a_client_asking_for_the_usage_chunk_gets_it(
    sdk: openai.AsyncOpenAI, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=2))
    stream = await sdk.completions.create(model=model, prompt="hi", stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]

    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2


async def test_a_provider_error_on_a_completion_is_relayed(
    client: httpx.AsyncClient, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(status=404))
    response = await client.post("/v1/completions", json={"model": model, "prompt": "hi"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("completions-model") / "tiny.gguf", seed=3).resolve()


@pytest.fixture
def local_workers(gateway: Gateway, scratch: Path) -> Iterator[LocalWorkers]:
    workers = LocalWorkers(gateway, scratch)
    yield workers
    workers.stop()


async def completed_once_served(client: httpx.AsyncClient, alias: str, *, wait_s: float = 30) -> httpx.Response:
    """A completion for ``alias``, retried while no worker serving it is up yet."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        response = await client.post("/v1/completions", json={"model": alias, "prompt": "Hello", "max_tokens": 2})
        if response.status_code != 503 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_a_local_alias_completes_a_prompt_streamed_and_not(
    client: httpx.AsyncClient,
    sdk: openai.AsyncOpenAI,
    local_workers: LocalWorkers,
    tiny_model: Path,
    db: asyncpg.Connection,
) -> None:
    """Before, a local worker refused `/v1/completions` (and the API had no such route)."""
    alias = await add_alias(client, tiny_model)  # its request_params: max_tokens 8
    local_workers.start(alias)
    first = await completed_once_served(client, alias)
    assert first.status_code == 200, first.text

    answered = await sdk.completions.create(model=alias, prompt="Once upon a time", max_tokens=4, temperature=0)
    stream = await sdk.completions.create(
        model=alias, prompt="Once upon a time", stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    by_ids = await sdk.completions.create(model=alias, prompt=[1, 2, 3], max_tokens=2)

    assert answered.object == "text_completion"
    assert answered.model == alias
    assert isinstance(answered.choices[0].text, str)
    assert answered.usage is not None
    assert answered.usage.prompt_tokens > 0
    assert 1 <= answered.usage.completion_tokens <= 4
    assert answered.usage.total_tokens == answered.usage.prompt_tokens + answered.usage.completion_tokens
    assert chunks
    assert all(c.object == "text_completion" and c.model == alias for c in chunks)
    assert all(isinstance(c.choices[0].text, str) for c in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert 1 <= chunks[-1].usage.completion_tokens <= 8  # the alias's max_tokens applied
    assert by_ids.usage is not None
    assert by_ids.usage.prompt_tokens >= 3
    rows = await usage_rows(db, alias, 4, ok_only=True)  # not the 503s while the worker started
    assert [(r["endpoint"], r["status"]) for r in rows] == [("completions", "ok")] * 4
    assert (rows[1]["prompt_tokens"], rows[1]["completion_tokens"]) == (
        answered.usage.prompt_tokens,
        answered.usage.completion_tokens,
    )
    assert (rows[2]["prompt_tokens"], rows[2]["completion_tokens"]) == (
        chunks[-1].usage.prompt_tokens,
        chunks[-1].usage.completion_tokens,
    )


LOCAL_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"prompt": ["one", "two"]}, "prompt"),  # local models complete one prompt per request
    ({"prompt": "hi", "n": 2}, "n"),
    ({"prompt": "hi", "echo": "yes"}, "echo"),
    ({"prompt": "hi", "temperature": "hot"}, "temperature"),
]


async def test_a_local_alias_refuses_what_it_cannot_complete_with_a_400(
    client: httpx.AsyncClient, local_workers: LocalWorkers, tiny_model: Path
) -> None:
    alias = await add_alias(client, tiny_model)
    local_workers.start(alias)
    assert (await completed_once_served(client, alias)).status_code == 200

    for fields, param in LOCAL_REFUSALS:
        response = await client.post("/v1/completions", json={"model": alias, **fields})

        assert response.status_code == 400, (fields, response.text)
        assert response.json()["error"]["param"] == param, fields
