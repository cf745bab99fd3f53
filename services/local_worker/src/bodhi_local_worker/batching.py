"""Continuous batching: the sequences of one loaded model decoded together, in one thread of their own.

A model loaded with ``n_parallel`` above 1 gets a ``BatchingEngine``: ``n_parallel`` slots (llama.cpp sequence
ids), each running one request at a time. Its thread loops over decode steps; each step

1. admits waiting sequences into free slots (between two steps: a new request never waits for the others to end),
   each into the free slot whose cache its prompt continues (``_slot_for``), else the least recently used, and
   drops that slot's KV cache after the shared prefix only (``llama_memory_seq_rm``): the next turn of a
   conversation re-processes only what the last one did not see, even after other requests came in between;
2. builds one ``llama_batch``: the last sampled token of every generating sequence, then prompt tokens of the
   sequences still reading their prompt, at most ``prefill_chunk`` of them while others generate (a long prompt is
   read over several steps instead of stalling everyone's next token), the whole batch otherwise;
3. runs ``llama_decode`` once, and samples each sequence's next token from its own row with its own sampler chain
   (``engine.Sampler``: its temperature, top-p, seed, logit bias, penalties);
4. hands each sequence its text (``text_stream.TextStream``: stop strings, whole characters) through the callback
   it came with, and ends those that met an end token, a stop string, their ``max_tokens`` or their slot's context.

Embedding requests are decoded here too, between two generation steps: as many inputs of one length as fit in one
batch, from every waiting request, each in a slot that runs nothing at that moment, all in one ``llama_decode``
with embeddings on (an input waits while every slot generates; see ``_embed_some`` for the one length).

**The KV budget is split, not shared.** The context holds ``n_ctx`` cells (the alias's ``n_ctx``: the memory it
costs does not change with ``n_parallel``); a request may use ``n_ctx // n_parallel`` of them, its slot's share
(``slot_context``; llama.cpp rounds each share up to a multiple of 256 cells). A prompt that does not fit in a
slot's share is refused before it starts (400 naming both numbers). Shared cells would let one long request use
more, but then a slot could run out of cells mid-answer when others grew, and the only ways out are cutting
someone's answer or evicting and recomputing their cache; split shares make every admitted request sure to
finish, with no preemption, and each slot's cached conversation stays until that slot serves another. The split
is llama.cpp's own: the context is built with one KV stream per slot (``kv_unified`` off,
``engine.MeteredLlama.partition_kv``), so each sequence attends only to its own cells. In one shared pool every
token attends to every cell in use (masked), the idle slots' cached conversations included: measured on the
benchmark model, that made a prompt read in a busy cache nearly twice as slow.

Requests the batch cannot serve (tools, grammars, logprobs; see ``prompts``) take the one-at-a-time path through
``exclusive``: new sequences wait, running ones finish, the caller gets the context (llama-cpp-python's own
``create_*`` calls, on sequence 0 and a slot's share of cells), and the cache is cleared before batching resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bodhi_local_worker.sampling import Sampling
from bodhi_local_worker.text_stream import TextStream

if TYPE_CHECKING:
    from bodhi_local_worker.engine import BatchDecoder, Sampler

log = logging.getLogger(__name__)

# Prompt tokens read per step while other sequences generate: each step then costs about as much as a few decode
# steps, so their tokens keep coming while a long prompt is read (0.1 s a chunk for a 100M model on 2 cores).
PREFILL_CHUNK = 128
# A new prompt goes to the slot whose cache it continues if it shares at least this part of the cached tokens
# (llama.cpp's server has the same rule, its --slot-prompt-similarity, 0.5 by default).
SIMILARITY = 0.5


class EngineClosed(Exception):
    """The model was unloaded (the worker is stopping) while the request waited or ran."""


class DecodeFailed(Exception):
    """llama.cpp could not decode a batch (its error code in the message)."""


@dataclass(frozen=True, slots=True)
class SequenceRequest:
    """What a sequence generates from: its prompt's tokens and how to sample and when to stop."""

    prompt: list[int]
    sampling: Sampling = field(default_factory=Sampling)
    max_tokens: int | None = None  # None: until the slot's context is full
    stops: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Delta:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    finish_reason: str  # "stop" (an end token or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int  # sampled tokens, the end token excluded (as llama-cpp-python counts them)
    cached_tokens: int  # prompt tokens found in the slot's cache, not decoded again
    tokens: tuple[int, ...] = ()  # the sampled tokens (for tests and the benchmark; clients get the text)


@dataclass(frozen=True, slots=True)
class Failed:
    error: Exception


Event = Delta | Finished | Failed


@dataclass(frozen=True, slots=True)
class Embedded:
    vectors: list[list[float]]
    prompt_tokens: int


class Sequence:
    """One request's generation: created on the event loop, advanced by the engine's thread alone."""

    def __init__(self, request: SequenceRequest, deliver: Callable[[Event], None]) -> None:
        self.request = request
        self.deliver = deliver  # thread-safe: called from the engine's thread
        self.cancelled = threading.Event()
        self.slot: _Slot | None = None
        self.sampler: Sampler | None = None
        self.n_past = 0  # tokens of this sequence in its slot's KV cache
        self.next_token: int | None = None  # sampled, to be decoded next step
        self.row = -1  # its batch row with logits this step
        self.completion_tokens = 0
        self.cached_tokens = 0
        self.tokens: list[int] = []
        self.text = TextStream(request.stops)


class EmbeddingJob:
    """The inputs of one embeddings request (token ids), embedded a batch at a time."""

    def __init__(self, inputs: list[list[int]], deliver: Callable[[Embedded | Failed], None]) -> None:
        self.inputs = inputs
        self.deliver = deliver
        self.cancelled = threading.Event()
        self.waiting = list(range(len(inputs)))  # the inputs not put in a batch yet
        self.vectors: dict[int, list[float]] = {}


@dataclass(eq=False)
class _Slot:
    index: int  # the llama.cpp sequence id
    cached: list[int] = field(default_factory=list)  # the tokens in its KV cache, positions 0..
    sequence: Sequence | None = None
    last_used: int = 0


@dataclass(eq=False)
class _Turn:
    """A caller of ``exclusive``: granted the context once no sequence runs, until it releases it."""

    loop: asyncio.AbstractEventLoop
    granted: asyncio.Future[None]
    released: threading.Event = field(default_factory=threading.Event)


@dataclass
class EngineStats:
    """Counters, for tests and the benchmark (written by the engine's thread)."""

    decode_calls: int = 0
    decode_seconds: float = 0.0  # inside llama_decode
    decoded_tokens: int = 0
    embedding_decodes: int = 0
    reused_prompt_tokens: int = 0
    most_in_one_step: int = 0  # the most sequences that had a row in one decode


def common_prefix(first: list[int], second: list[int]) -> int:
    count = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        count += 1
    return count


class BatchingEngine:
    def __init__(
        self,
        decoder: BatchDecoder,
        new_sampler: Callable[[Sampling], Sampler],
        *,
        n_parallel: int,
        prefill_chunk: int = PREFILL_CHUNK,
        name: str = "model",
    ) -> None:
        if not 1 <= n_parallel <= decoder.n_seq_max:
            raise ValueError(f"n_parallel must be between 1 and {decoder.n_seq_max}, not {n_parallel}")
        self.decoder = decoder
        self.n_parallel = n_parallel
        # One KV stream per slot: llama.cpp's own size of it (it pads each to 256 cells); else a share of the pool.
        partitioned = decoder.n_seq_max == n_parallel
        self.slot_context = decoder.n_ctx_seq if partitioned else decoder.n_ctx // n_parallel
        self.prefill_chunk = max(1, prefill_chunk)
        self.stats = EngineStats()
        self._new_sampler = new_sampler
        self._slots = [_Slot(index) for index in range(n_parallel)]
        self._uses = itertools.count(1)
        self._active: list[Sequence] = []  # admitted, in admission order
        self._inbox: deque[Sequence] = deque()
        self._embeddings: deque[EmbeddingJob] = deque()
        self._turns: deque[_Turn] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"batching {name}", daemon=True)
        self._thread.start()

    # The event loop's side: thread-safe.

    @property
    def embedding_limit(self) -> int:
        """The most tokens one embedding input may have (it is decoded whole, in one micro-batch)."""
        return min(self.decoder.n_ubatch, self.decoder.n_batch, self.slot_context)

    def submit(self, sequence: Sequence) -> None:
        with self._cond:
            if self._closing:
                raise EngineClosed
            self._inbox.append(sequence)
            self._cond.notify()

    def submit_embeddings(self, job: EmbeddingJob) -> None:
        with self._cond:
            if self._closing:
                raise EngineClosed
            self._embeddings.append(job)
            self._cond.notify()

    def cancel(self, item: Sequence | EmbeddingJob) -> None:
        """Stop a sequence at the next step (a no-op once it ended); its slot keeps what it cached."""
        item.cancelled.set()
        with self._cond:
            self._cond.notify()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """The whole context for the caller alone: new sequences wait, running ones finish first."""
        loop = asyncio.get_running_loop()
        turn = _Turn(loop, loop.create_future())
        with self._cond:
            self._turns.append(turn)
            self._cond.notify()
        try:
            await turn.granted
            yield
        finally:
            turn.released.set()  # also when cancelled before its turn: the engine then skips it

    def close(self) -> None:
        """Stop the thread (blocking: call it in a thread); waiting and running requests get ``EngineClosed``."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    # The engine's thread.

    def _run(self) -> None:
        try:
            while (work := self._wait_for_work()) is not None:
                if isinstance(work, _Turn):
                    self._lend(work)
                    continue
                try:
                    self._step()
                except Exception as exc:  # a bug: the sequences of the step fail, the engine goes on
                    log.exception("batching step failed")
                    self._fail_active(exc)
        finally:
            self._shut_down()

    def _wait_for_work(self) -> _Turn | bool | None:
        with self._cond:
            while True:
                if self._closing:
                    return None
                if self._turns and not self._active:
                    return self._turns.popleft()
                if self._active or self._embeddings or (self._inbox and not self._turns):
                    return True
                self._cond.wait()

    def _lend(self, turn: _Turn) -> None:
        if turn.released.is_set():  # its caller gave up while waiting
            return
        self.decoder.clear_memory()
        for slot in self._slots:
            slot.cached.clear()
        try:
            turn.loop.call_soon_threadsafe(_grant, turn.granted)
        except RuntimeError:  # its loop is closed: nobody will use the context
            return
        turn.released.wait()
        self.decoder.clear_memory()  # what the caller left in sequence 0

    def _step(self) -> None:
        for sequence in [s for s in self._active if s.cancelled.is_set()]:
            self._release(sequence)
        if self._embeddings:  # first: in the slots idle now, which new sequences would take
            self._embed_some()
        self._admit()
        if self._active:
            self._decode_step()

    def _admit(self) -> None:
        with self._cond:
            while self._inbox and not self._turns:
                free = [slot for slot in self._slots if slot.sequence is None]
                if not free:
                    return
                sequence = self._inbox.popleft()
                if not sequence.cancelled.is_set():
                    self._start(sequence, free)

    def _start(self, sequence: Sequence, free: list[_Slot]) -> None:
        prompt = sequence.request.prompt
        slot = self._slot_for(prompt, free)
        keep = min(common_prefix(slot.cached, prompt), len(prompt) - 1)  # the last prompt token gives the logits
        if keep < len(slot.cached):
            self.decoder.remove(slot.index, keep)
            del slot.cached[keep:]
        slot.sequence, sequence.slot = sequence, slot
        sequence.n_past = sequence.cached_tokens = keep
        sequence.sampler = self._new_sampler(sequence.request.sampling)
        self.stats.reused_prompt_tokens += keep
        self._active.append(sequence)

    @staticmethod
    def _slot_for(prompt: list[int], free: list[_Slot]) -> _Slot:
        """The free slot whose cache this prompt continues (at least ``SIMILARITY`` of its cached tokens shared,
        the most first); else the least recently used one, so that a prompt that merely starts like a cached
        conversation (the same system prompt) does not take that conversation's slot."""
        shared = {id(slot): common_prefix(slot.cached, prompt) for slot in free}
        continued = [slot for slot in free if slot.cached and shared[id(slot)] >= SIMILARITY * len(slot.cached)]
        if continued:
            return max(continued, key=lambda slot: shared[id(slot)])
        return min(free, key=lambda slot: slot.last_used)

    def _decode_step(self) -> None:
        decoder = self.decoder
        decoder.clear()
        generating = [s for s in self._active if s.next_token is not None]
        for sequence in generating:
            assert sequence.slot is not None
            assert sequence.next_token is not None
            sequence.row = decoder.add(sequence.next_token, sequence.n_past, sequence.slot.index, output=True)
        room = decoder.n_batch - len(generating)
        chunk = min(room, self.prefill_chunk) if generating else room
        reading = self._add_prompt_chunks(chunk)
        self.stats.most_in_one_step = max(self.stats.most_in_one_step, len(generating) + len(reading))
        started = time.perf_counter()
        code = decoder.decode()
        self.stats.decode_seconds += time.perf_counter() - started
        self.stats.decode_calls += 1
        self.stats.decoded_tokens += decoder.n_tokens
        if code != 0:
            for sequence in generating + [s for s, _ in reading]:
                self._fail(sequence, DecodeFailed(f"llama_decode returned {code}"))
            return
        for sequence in generating:
            assert sequence.slot is not None
            assert sequence.next_token is not None
            sequence.slot.cached.append(sequence.next_token)
            sequence.n_past += 1
            sequence.next_token = None
        for sequence, count in reading:
            assert sequence.slot is not None
            sequence.slot.cached.extend(sequence.request.prompt[sequence.n_past : sequence.n_past + count])
            sequence.n_past += count
        sampled = generating + [s for s, _ in reading if s.n_past == len(s.request.prompt)]
        for sequence in sampled:
            assert sequence.sampler is not None
            self._accept(sequence, decoder.sample(sequence.sampler, sequence.row))

    def _add_prompt_chunks(self, budget: int) -> list[tuple[Sequence, int]]:
        """Add up to ``budget`` prompt tokens of the sequences still reading theirs, the earliest first."""
        reading = []
        for sequence in self._active:
            if budget <= 0:
                break
            prompt = sequence.request.prompt
            if sequence.next_token is not None or sequence.n_past >= len(prompt):
                continue
            assert sequence.slot is not None
            count = min(budget, len(prompt) - sequence.n_past)
            for position in range(sequence.n_past, sequence.n_past + count):
                last = position == len(prompt) - 1
                row = self.decoder.add(prompt[position], position, sequence.slot.index, output=last)
                if last:
                    sequence.row = row
            reading.append((sequence, count))
            budget -= count
        return reading

    def _accept(self, sequence: Sequence, token: int) -> None:
        if self.decoder.is_end(token):
            self._finish(sequence, "stop")
            return
        sequence.completion_tokens += 1
        sequence.tokens.append(token)
        text = sequence.text.feed(self.decoder.piece(token))
        if text:
            sequence.deliver(Delta(text))
        request = sequence.request
        # As llama-cpp-python: at most what the context has room for after the prompt.
        most = self.slot_context - len(request.prompt)
        if request.max_tokens is not None and request.max_tokens > 0:
            most = min(most, request.max_tokens)
        if sequence.text.stopped:
            self._finish(sequence, "stop")
        elif sequence.completion_tokens >= most:
            self._finish(sequence, "length")
        else:
            sequence.next_token = token

    def _finish(self, sequence: Sequence, reason: str) -> None:
        if rest := sequence.text.flush():
            sequence.deliver(Delta(rest))
        prompt_tokens, completion = len(sequence.request.prompt), sequence.completion_tokens
        sequence.deliver(Finished(reason, prompt_tokens, completion, sequence.cached_tokens, tuple(sequence.tokens)))
        self._release(sequence)

    def _fail(self, sequence: Sequence, error: Exception) -> None:
        sequence.deliver(Failed(error))
        if sequence.slot is not None:  # its cache is in an unknown state
            self.decoder.remove(sequence.slot.index)
            sequence.slot.cached.clear()
        self._release(sequence)

    def _fail_active(self, error: Exception) -> None:
        for sequence in list(self._active):
            self._fail(sequence, error)

    def _release(self, sequence: Sequence) -> None:
        if sequence.slot is not None:
            sequence.slot.sequence = None
            sequence.slot.last_used = next(self._uses)
            sequence.slot = None
        if sequence.sampler is not None:
            sequence.sampler.close()
            sequence.sampler = None
        self._active.remove(sequence)

    def _embed_some(self) -> None:
        """One embeddings decode: as many waiting inputs as fit in a batch, each in a slot that runs nothing now
        (its cached tokens are dropped: the slot is its own for this one decode).

        With a KV stream per slot, llama.cpp splits a batch into micro-batches of equal parts of each sequence, and
        a pooled embedding split over two comes out wrong: one decode embeds inputs of one length only (the
        earliest waiting input's), the others wait for the next step."""
        decoder = self.decoder
        decoder.clear()
        idle = [slot for slot in self._slots if slot.sequence is None]
        placed: list[tuple[EmbeddingJob, int, int, list[int]]] = []  # job, input, sequence id, its rows
        with self._cond:
            jobs = [job for job in self._embeddings if not job.cancelled.is_set() and job.waiting]
        length = len(jobs[0].inputs[jobs[0].waiting[0]]) if jobs else 0
        for job in jobs:
            for index in [i for i in job.waiting if len(job.inputs[i]) == length]:
                if decoder.n_tokens + length > decoder.n_batch or not idle:
                    break
                slot = idle.pop(0)
                if slot.cached:
                    decoder.remove(slot.index)
                    slot.cached.clear()
                tokens = job.inputs[index]
                rows = [decoder.add(token, position, slot.index, output=True) for position, token in enumerate(tokens)]
                placed.append((job, index, slot.index, rows))
                job.waiting.remove(index)
        if placed:
            self._decode_embeddings(placed)
        with self._cond:
            for job in list(self._embeddings):
                if job.cancelled.is_set() or len(job.vectors) == len(job.inputs):
                    self._embeddings.remove(job)
                    if not job.cancelled.is_set():
                        vectors = [job.vectors[index] for index in range(len(job.inputs))]
                        job.deliver(Embedded(vectors, sum(len(tokens) for tokens in job.inputs)))

    def _decode_embeddings(self, placed: list[tuple[EmbeddingJob, int, int, list[int]]]) -> None:
        decoder = self.decoder
        code = decoder.decode(embeddings=True)
        self.stats.decode_calls += 1
        self.stats.embedding_decodes += 1
        self.stats.decoded_tokens += decoder.n_tokens
        try:
            for job, index, seq_id, rows in placed:
                if code != 0:
                    if not job.cancelled.is_set():
                        job.cancelled.set()
                        job.deliver(Failed(DecodeFailed(f"llama_decode returned {code}")))
                elif decoder.pooled:
                    job.vectors[index] = decoder.sequence_embedding(seq_id)
                else:  # one vector per token: their mean, as for the one-at-a-time path
                    per_token = [decoder.row_embedding(row) for row in rows]
                    job.vectors[index] = [sum(column) / len(per_token) for column in zip(*per_token, strict=True)]
        finally:
            for _, _, seq_id, _ in placed:
                decoder.remove(seq_id)

    def _shut_down(self) -> None:
        with self._cond:
            self._closing = True
            waiting, self._inbox = list(self._inbox), deque()
            jobs, self._embeddings = list(self._embeddings), deque()
            turns, self._turns = list(self._turns), deque()
        for sequence in [*self._active, *waiting]:
            sequence.deliver(Failed(EngineClosed()))
        for sequence in list(self._active):
            self._release(sequence)
        for job in jobs:
            job.deliver(Failed(EngineClosed()))
        for turn in turns:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                turn.loop.call_soon_threadsafe(_refuse, turn.granted)
        self.decoder.close()


def _grant(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _refuse(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(EngineClosed())
