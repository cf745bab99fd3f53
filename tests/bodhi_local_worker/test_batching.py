"""The batching engine on the tiny generated GGUF, in this process: several sequences in one decode, each with its
own tokens, cancellable alone, prompts read in chunks, a conversation's prefix reused, embeddings batched."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bodhi_local_worker import batched
from bodhi_local_worker.batching import BatchingEngine, Finished, SequenceRequest
from bodhi_local_worker.models import LoadedModel, load_llama
from bodhi_local_worker.sampling import Sampling
from bodhi_shared.contract import LocalModel
from tests.support.tiny_gguf import EOS_ID

if TYPE_CHECKING:
    from bodhi_local_worker.engine import MeteredLlama

GREEDY = Sampling(temperature=0)
NO_END = {EOS_ID: -100.0}  # the end-of-text token forbidden: every sequence runs to its max_tokens
PROMPTS = ["The first prompt", "A second, different one", "3rd: numbers 1 2 3", "and a fourth, in lower case"]


def load(tiny_model: Path, **context_params: object) -> LoadedModel:
    return load_llama(LocalModel(alias="tiny", path=str(tiny_model), context_params=context_params), gpu=None)


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Iterator[LoadedModel]:
    loaded = load(tiny_model, n_ctx=4096, n_parallel=4)
    yield loaded
    loaded.close()


def engine_of(model: LoadedModel) -> BatchingEngine:
    assert model.batcher is not None
    return model.batcher


def request(llm: MeteredLlama, prompt: str, *, max_tokens: int = 60, sampling: Sampling = GREEDY) -> SequenceRequest:
    return SequenceRequest(prompt=llm.tokenize(prompt.encode()), sampling=sampling, max_tokens=max_tokens)


class Timed:
    """A sequence's text and when its first and last pieces came."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.first: float | None = None
        self.finished: Finished | None = None
        self.ended = math.inf

    def on_text(self, text: str) -> None:
        self.first = self.first or time.monotonic()
        self.parts.append(text)


async def timed(engine: BatchingEngine, sequence: SequenceRequest) -> Timed:
    record = Timed()
    record.finished = await batched.run_sequence(engine, sequence, record.on_text)
    record.ended = time.monotonic()
    return record


def first_difference(a: tuple[int, ...], b: tuple[int, ...]) -> int | None:
    return next((index for index, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)


async def test_concurrent_sequences_run_together_and_each_gets_its_own_tokens(model: LoadedModel) -> None:
    engine = engine_of(model)
    requests = [request(model.llm, prompt, max_tokens=120) for prompt in PROMPTS]
    alone = [await timed(engine, sequence) for sequence in requests]
    steps_before = engine.stats.decode_calls

    together = await asyncio.gather(*(timed(engine, sequence) for sequence in requests))

    # All at once: every first token came before any sequence finished, in far fewer decodes than one by one.
    assert max(record.first or math.inf for record in together) < min(record.ended for record in together)
    assert engine.stats.most_in_one_step == 4
    assert engine.stats.decode_calls - steps_before < 2 * 120
    for prompt, one, each in zip(PROMPTS, alone, together, strict=True):
        assert one.finished is not None
        assert each.finished is not None
        assert each.finished.completion_tokens == one.finished.completion_tokens
        differs = first_difference(one.finished.tokens, each.finished.tokens)
        assert differs is None, f"{prompt!r}: batched differs from alone at token {differs}"
        assert "".join(each.parts) == "".join(one.parts)
    # The prompts differ, and so do the answers: a sequence that read another's tokens would show it above.
    assert len({record.finished.tokens for record in together if record.finished}) == len(PROMPTS)


async def test_cancelling_one_sequence_leaves_the_others_running(model: LoadedModel) -> None:
    engine = engine_of(model)
    sampling = Sampling(temperature=0, logit_bias=NO_END)
    requests = [request(model.llm, prompt, max_tokens=400, sampling=sampling) for prompt in PROMPTS[:3]]
    tasks = [asyncio.create_task(timed(engine, sequence)) for sequence in requests]
    await asyncio.sleep(0.05)
    tasks[1].cancel()

    done = [await task for task in (tasks[0], tasks[2])]
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert all(record.finished is not None and record.finished.completion_tokens == 400 for record in done)
    # The cancelled one left its slot: four sequences fit again at once.
    again = await asyncio.gather(*(timed(engine, request(model.llm, p, max_tokens=5)) for p in PROMPTS))
    assert all(record.finished is not None for record in again)


async def test_a_long_prompt_is_read_in_chunks_while_the_others_generate(tiny_model: Path) -> None:
    loaded = load(tiny_model, n_ctx=8192, n_parallel=2)
    try:
        engine = engine_of(loaded)
        engine.prefill_chunk = 32
        llm = loaded.llm
        sampling = Sampling(temperature=0, logit_bias=NO_END)
        arrivals: list[float] = []
        generating_now = asyncio.Event()

        def arrived(_: str) -> None:
            arrivals.append(time.monotonic())
            generating_now.set()

        runner = asyncio.create_task(
            batched.run_sequence(engine, request(llm, "short", max_tokens=3500, sampling=sampling), arrived)
        )
        await generating_now.wait()
        long_prompt = SequenceRequest(prompt=llm.tokenize(b"x" * 3000), sampling=GREEDY, max_tokens=1)
        calls_before = engine.stats.decode_calls
        asked = time.monotonic()
        reader = await timed(engine, long_prompt)
        assert not runner.done(), "the other sequence ended before the long prompt was read: make it longer"
        generating = await runner

        # 3000 prompt tokens at 32 a step: about 94 decodes, each also giving the other sequence its next token.
        assert engine.stats.decode_calls - calls_before >= 3000 // 32
        # Its text kept coming while the prompt was read: about one token a step (some are bytes of no whole
        # character, which send no text). Read in chunks of the batch's size instead, 6 steps would have given 6.
        during = [at for at in arrivals if asked < at < reader.ended]
        assert len(during) >= 20
        assert generating.completion_tokens == 3500
        assert reader.finished is not None
        assert reader.finished.prompt_tokens == len(long_prompt.prompt)
    finally:
        loaded.close()


async def test_the_next_turn_of_a_conversation_reuses_its_prefix(model: LoadedModel, tiny_model: Path) -> None:
    engine = engine_of(model)
    history = "user: tell me a story about a cat who lived in a library, please\nassistant:"
    first = await timed(engine, request(model.llm, history, max_tokens=40))
    assert first.finished is not None
    follow_up = history + "".join(first.parts) + "\nuser: and then?\nassistant:"
    reused_before = engine.stats.reused_prompt_tokens

    second = await timed(engine, request(model.llm, follow_up, max_tokens=40))

    assert second.finished is not None
    history_tokens = len(model.llm.tokenize(history.encode()))
    assert second.finished.cached_tokens >= history_tokens  # the first turn's prompt, at least, not read again
    assert engine.stats.reused_prompt_tokens - reused_before == second.finished.cached_tokens
    # Reading from the cache gives what reading it all gives: the same turn on a model with an empty cache.
    fresh = load(tiny_model, n_ctx=4096, n_parallel=4)
    try:
        cold = await timed(engine_of(fresh), request(fresh.llm, follow_up, max_tokens=40))
    finally:
        fresh.close()
    assert cold.finished is not None
    assert cold.finished.cached_tokens == 0
    assert cold.finished.tokens == second.finished.tokens


async def test_stop_strings_and_max_tokens_end_a_sequence(model: LoadedModel) -> None:
    engine = engine_of(model)
    sampling = Sampling(temperature=0, logit_bias=NO_END)
    free = await timed(engine, request(model.llm, PROMPTS[0], max_tokens=50, sampling=sampling))
    assert free.finished is not None
    assert free.finished.finish_reason == "length"
    text = "".join(free.parts)
    stop = text[10:13]
    cut = SequenceRequest(
        prompt=model.llm.tokenize(PROMPTS[0].encode()), sampling=sampling, max_tokens=50, stops=[stop]
    )

    stopped = await timed(engine, cut)

    assert stopped.finished is not None
    assert stopped.finished.finish_reason == "stop"
    assert "".join(stopped.parts) == text[: text.index(stop)]


async def test_a_one_at_a_time_call_waits_for_the_batch_and_the_batch_for_it(model: LoadedModel) -> None:
    engine = engine_of(model)
    sampling = Sampling(temperature=0, logit_bias=NO_END)
    running = asyncio.create_task(timed(engine, request(model.llm, PROMPTS[0], max_tokens=300, sampling=sampling)))
    await asyncio.sleep(0.02)

    async with model.exclusive() as llm:
        assert running.done()  # it finished before the context was lent
        completion: Any = await asyncio.to_thread(llm.create_completion, prompt="hello", max_tokens=4, temperature=0)
    after = await timed(engine, request(model.llm, PROMPTS[1], max_tokens=5))

    assert completion["choices"][0]["finish_reason"] in {"length", "stop"}
    assert after.finished is not None
    assert after.finished.completion_tokens == 5


async def test_embeddings_are_batched_and_match_the_one_at_a_time_path(model: LoadedModel, tiny_model: Path) -> None:
    engine = engine_of(model)
    texts = ["hello", "wörld", "a somewhat longer input of text", "equal"]  # 9, 10, 45 and 9 tokens
    tokens = [model.llm.tokenize(text.encode()) for text in texts]
    sampling = Sampling(temperature=0, logit_bias=NO_END)
    generating = asyncio.create_task(timed(engine, request(model.llm, PROMPTS[2], max_tokens=200, sampling=sampling)))
    calls_before, embeds_before = engine.stats.decode_calls, engine.stats.embedding_decodes

    first, second = await asyncio.gather(batched.embed(engine, tokens), batched.embed(engine, tokens[:1]))
    await generating

    serial = load(tiny_model, n_ctx=512, n_parallel=1)
    try:
        expected = serial.llm.create_embedding(texts)["data"]
    finally:
        serial.close()
    assert first.prompt_tokens == sum(len(t) for t in tokens)
    for vector, item in zip(first.vectors, expected, strict=True):
        assert vector == pytest.approx(item["embedding"], abs=1e-4)
    assert second.vectors[0] == pytest.approx(first.vectors[0], abs=1e-5)
    assert engine.stats.decode_calls > calls_before  # generation went on around them
    # Inputs of one length share a decode (where llama.cpp allows it: see batching): the two 9-token inputs at least.
    assert engine.stats.embedding_decodes - embeds_before < len(texts) + 1
