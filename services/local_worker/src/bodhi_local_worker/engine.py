"""The one module that imports ``llama_cpp``: a ``Llama`` that counts its tokens and can be stopped between two,
and the low-level calls the batching engine (``batching``) decodes with.

It is imported lazily, when the first model loads (``models.load_llama``), so that ``bodhi local-worker --gpu N``
has set ``CUDA_VISIBLE_DEVICES`` before llama.cpp initialises its backends.

One at a time: every completion llama-cpp-python runs, streamed or not, chat template or function-calling handler,
draws its tokens from ``Llama.generate``. ``MeteredLlama.generate`` wraps it: it records the prompt length and
counts the sampled tokens into the running generation's ``Meter``, and raises ``GenerationCancelled`` at the next
token once the meter's stop event is set (by a cancelled job, on the event loop's thread).

Batched: ``BatchDecoder`` wraps ``llama_batch``, ``llama_decode``, ``llama_memory_seq_rm`` and the embeddings
getters on the same context; ``Sampler`` is one sequence's sampler chain; ``chat_completion_arguments`` asks the
model's own chat handler for a chat's prompt tokens and settings without running it; ``completion_prompt`` gives
a text prompt's tokens as ``Llama.create_completion`` makes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import _internals as internals
from llama_cpp import llama_chat_format

from bodhi_local_worker.batching import BatchingEngine
from bodhi_local_worker.generation import GenerationCancelled, Meter
from bodhi_local_worker.sampling import Sampling

DEFAULT_SLOT_CONTEXT = 512  # tokens per slot when the alias sets no n_ctx: llama-cpp-python's default context


class MeteredLlama(llama_cpp.Llama):
    """A ``llama_cpp.Llama`` loaded with ``embedding=True`` that serves chat completions and embeddings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meter: Meter | None = None
        self._embeddings_on = True

    def partition_kv(self, n_seq: int) -> None:
        """Rebuild the context with one KV stream of ``n_ctx / n_seq`` cells for each of ``n_seq`` sequences
        (``kv_unified`` off): each sequence attends only to its own cells (see batching). Blocking."""
        params = self.context_params
        params.n_seq_max = n_seq
        params.kv_unified = False
        self._ctx.close()  # type: ignore[no-untyped-call]  # the first one, before the second takes its memory
        context = internals.LlamaContext(model=self._model, params=params, verbose=self.verbose)
        self._ctx = self._stack.enter_context(contextlib.closing(context))
        self._n_ctx = self.n_ctx()

    def use_embeddings(self, on: bool) -> None:
        """Turn the context's embedding output on (embeddings) or off (generation: only the last logits)."""
        if on != self._embeddings_on:
            llama_cpp.llama_set_embeddings(self.ctx, on)
            self._embeddings_on = on

    def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Generator[int, Sequence[int] | None, None]:
        meter = self.meter
        inner = super().generate(tokens, *args, **kwargs)
        if meter is None:
            return (yield from inner)
        meter.prompt_tokens += len(tokens)
        try:
            token = next(inner)
            while True:
                if meter.stop.is_set():
                    raise GenerationCancelled
                if not llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                    meter.completion_tokens += 1  # as llama-cpp-python counts them: end-of-generation excluded
                sent = yield token
                token = inner.send(sent)
        except StopIteration:
            return
        finally:
            inner.close()


def load(path: str, *, n_parallel: int = 1, **params: Any) -> MeteredLlama:
    """Load a GGUF file (blocking: call it in a thread).

    An alias that sets ``n_threads`` gets that many for prompt processing too: llama-cpp-python would otherwise
    use every core for it, and workers sharing a machine would fight over them. Without ``n_ctx``, each of the
    ``n_parallel`` slots gets the 512 tokens llama-cpp-python gives one context by default.
    """
    if "n_threads" in params:
        params.setdefault("n_threads_batch", params["n_threads"])
    params.setdefault("n_ctx", DEFAULT_SLOT_CONTEXT * n_parallel)
    llm = MeteredLlama(model_path=path, embedding=True, verbose=False, **params)
    if n_parallel > 1:
        llm.partition_kv(n_parallel)
    return llm


def batching_engine(llm: MeteredLlama, *, n_parallel: int, name: str) -> BatchingEngine:
    """Start the engine that batches ``n_parallel`` sequences on ``llm``'s context (see batching)."""
    decoder = BatchDecoder(llm)
    engine = BatchingEngine(
        decoder, lambda sampling: Sampler(sampling, decoder.n_vocab), n_parallel=n_parallel, name=name
    )
    # The one-at-a-time calls it lends the context to (tools, grammars) get a slot's share too: the same limit
    # for every request of the alias, whichever path answers it.
    llm._n_ctx = engine.slot_context
    return engine


class _Captured(Exception):
    def __init__(self, arguments: dict[str, Any]) -> None:
        super().__init__("captured")
        self.arguments = arguments


class _CompletionCapture:
    """Stands for the ``Llama`` a chat handler is given: the handler renders the chat template and tokenizes the
    prompt with it, and its call of ``create_completion`` is caught, with its arguments, instead of run."""

    verbose = False

    def __init__(self, llm: MeteredLlama) -> None:
        self._llm = llm

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return self._llm.tokenize(text, add_bos=add_bos, special=special)

    def create_completion(self, **arguments: Any) -> Any:
        raise _Captured(arguments)


def chat_completion_arguments(llm: MeteredLlama, params: dict[str, Any]) -> dict[str, Any] | None:
    """What ``llm.create_chat_completion(**params)`` would pass to ``create_completion``: the prompt's tokens (the
    model's chat template applied), the stop strings and the sampling settings, with the chat handler's defaults.

    None when the handler needs more of the ``Llama`` than formatting and tokenizing (multimodal and
    function-calling handlers): only the one-at-a-time path can run those. The template's own errors raise.
    """
    try:
        handler = (
            llm.chat_handler
            or llm._chat_handlers.get(llm.chat_format or "")
            or llama_chat_format.get_chat_completion_handler(llm.chat_format or "")
        )
        handler(llama=_CompletionCapture(llm), **params, stream=False)  # type: ignore[arg-type]
    except _Captured as captured:
        return captured.arguments
    except (AttributeError, TypeError, KeyError, llama_chat_format.LlamaChatCompletionHandlerNotFoundException):
        return None
    return None


def completion_prompt(llm: MeteredLlama, prompt: str | list[int]) -> list[int]:
    """The tokens ``Llama.create_completion`` decodes for a prompt without suffix (BOS, and EOS where the model
    adds one, around the text's tokens; token ids as they are)."""
    if isinstance(prompt, list):
        return list(prompt)
    model = llm._model
    bos, cls, sep = llm.token_bos(), model.token_cls(), model.token_sep()
    first = [] if not model.add_bos_token() or bos == -1 else [cls if cls != -1 else bos]
    last = [] if not model.add_eos_token() and sep == -1 else [sep if sep != -1 else llm.token_eos()]
    text = llm.tokenize(prompt.encode(), add_bos=False, special=True) if prompt else []
    return first + text + last


@functools.cache
def _ggml() -> ctypes.CDLL:
    """llama.cpp's ggml library, for its device registry (llama-cpp-python has no binding for it)."""
    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml.so"))
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    for name in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_char_p
    size_p = ctypes.POINTER(ctypes.c_size_t)
    lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, size_p, size_p]
    return lib


def devices() -> list[str]:
    """The devices llama.cpp sees in this process (after ``CUDA_VISIBLE_DEVICES``), with their free memory:
    ``["CUDA0 NVIDIA H200: 139264 of 143167 MiB free", "CPU ...: ..."]``; empty when the registry is unreadable."""
    try:
        lib = _ggml()
        found = []
        for index in range(lib.ggml_backend_dev_count()):
            device = lib.ggml_backend_dev_get(index)
            free, total = ctypes.c_size_t(), ctypes.c_size_t()
            lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
            name = lib.ggml_backend_dev_name(device).decode(errors="replace")
            description = lib.ggml_backend_dev_description(device).decode(errors="replace")
            found.append(f"{name} {description}: {free.value >> 20} of {total.value >> 20} MiB free")
        return found
    except (OSError, AttributeError):
        return []


class BatchDecoder:
    """llama.cpp's batch API on one loaded model's context, for ``batching.BatchingEngine``'s thread alone.

    One ``llama_batch`` of ``n_batch`` tokens, each token tagged with its sequence id and position; ``decode`` runs
    them all in one ``llama_decode``; ``sample`` draws a sequence's next token with its own sampler chain from the
    logits of one batch row. The KV cache of each sequence id is dropped from a position on with ``remove``.
    """

    def __init__(self, llm: MeteredLlama) -> None:
        self.llm = llm
        self.n_batch = int(llm.n_batch)
        self.n_ubatch = int(llm.context_params.n_ubatch)
        self.n_ctx = int(llm.n_ctx())
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(llm.ctx))
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(llm.ctx))  # the cells one sequence can use
        self.n_vocab = int(llm.n_vocab())
        self.n_embd = int(llm.n_embd())
        self.pooled = int(llama_cpp.llama_pooling_type(llm.ctx)) != llama_cpp.LLAMA_POOLING_TYPE_NONE
        self._vocab = llm._model.vocab
        self._memory = llama_cpp.llama_get_memory(llm.ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._rows: Any = self._batch  # the typed stub's element types are off: written as plain ints
        self._piece = ctypes.create_string_buffer(256)
        self.n_tokens = 0

    def clear(self) -> None:
        self.n_tokens = 0

    def add(self, token: int, position: int, seq_id: int, *, output: bool) -> int:
        """Append one token of ``seq_id`` at ``position``; returns its row (the one to sample from if ``output``)."""
        row, rows = self.n_tokens, self._rows
        rows.token[row] = token
        rows.pos[row] = position
        rows.n_seq_id[row] = 1
        rows.seq_id[row][0] = seq_id
        rows.logits[row] = 1 if output else 0
        self.n_tokens += 1
        return row

    def decode(self, *, embeddings: bool = False) -> int:
        """Run the batch (0: done; llama.cpp's error code otherwise); ``embeddings``: pooled vectors, no logits."""
        self.llm.use_embeddings(embeddings)
        self._batch.n_tokens = self.n_tokens
        return int(llama_cpp.llama_decode(self.llm.ctx, self._batch))

    def sample(self, sampler: Sampler, row: int) -> int:
        return int(llama_cpp.llama_sampler_sample(sampler.chain, self.llm.ctx, row))

    def is_end(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def piece(self, token: int) -> bytes:
        """The bytes of one token's text (control tokens: none)."""
        size = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        if size < 0:  # a piece longer than the buffer: never for real vocabularies, but sized right if so
            bigger = ctypes.create_string_buffer(-size)
            size = llama_cpp.llama_token_to_piece(self._vocab, token, bigger, len(bigger), 0, False)
            return bigger.raw[:size]
        return self._piece.raw[:size]

    def remove(self, seq_id: int, start: int = 0) -> None:
        """Drop the KV cache of ``seq_id`` from position ``start`` on."""
        llama_cpp.llama_memory_seq_rm(self._memory, seq_id, start, -1)

    def clear_memory(self) -> None:
        """Empty the whole KV cache, and llama-cpp-python's record of what it holds (``Llama.reset``)."""
        llama_cpp.llama_memory_clear(self._memory, True)
        self.llm.reset()  # type: ignore[no-untyped-call]

    def sequence_embedding(self, seq_id: int) -> list[float]:
        """The pooled embedding of ``seq_id`` after an embeddings ``decode``."""
        vector = llama_cpp.llama_get_embeddings_seq(self.llm.ctx, seq_id)
        if not vector:
            raise RuntimeError(f"llama.cpp gave no embedding for sequence {seq_id}")
        return [float(value) for value in vector[: self.n_embd]]

    def row_embedding(self, row: int) -> list[float]:
        """One token's embedding (models without pooling) after an embeddings ``decode``."""
        vector = llama_cpp.llama_get_embeddings_ith(self.llm.ctx, row)
        if not vector:
            raise RuntimeError(f"llama.cpp gave no embedding for batch row {row}")
        return [float(value) for value in vector[: self.n_embd]]

    def close(self) -> None:
        llama_cpp.llama_batch_free(self._batch)


class Sampler:
    """One sequence's sampler chain, in llama-cpp-python's order (``Llama._init_sampler``): logit bias, penalties,
    then greedy at temperature 0, else top-k, typical, top-p, min-p, temperature and a seeded draw."""

    def __init__(self, settings: Sampling, n_vocab: int) -> None:
        self.chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = functools.partial(llama_cpp.llama_sampler_chain_add, self.chain)
        if settings.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(settings.logit_bias))()
            for index, (token, bias) in enumerate(settings.logit_bias.items()):
                biases[index] = llama_cpp.llama_logit_bias(token, bias)
            add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(settings.logit_bias), biases))
        add(
            llama_cpp.llama_sampler_init_penalties(
                n_vocab,
                settings.penalty_last_n,
                settings.repeat_penalty,
                settings.frequency_penalty,
                settings.presence_penalty,
            )
        )
        seed = llama_cpp.LLAMA_DEFAULT_SEED if settings.seed is None else settings.seed & 0xFFFFFFFF
        if settings.temperature < 0:
            add(llama_cpp.llama_sampler_init_dist(seed))
        elif settings.temperature == 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            add(llama_cpp.llama_sampler_init_top_k(settings.top_k))
            add(llama_cpp.llama_sampler_init_typical(settings.typical_p, 1))
            add(llama_cpp.llama_sampler_init_top_p(settings.top_p, 1))
            add(llama_cpp.llama_sampler_init_min_p(settings.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(settings.temperature))
            add(llama_cpp.llama_sampler_init_dist(seed))

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self.chain)
