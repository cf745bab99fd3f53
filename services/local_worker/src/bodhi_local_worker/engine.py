"""The one module that imports ``llama_cpp``: a ``Llama`` that counts its tokens and can be stopped between two.

It is imported lazily, when the first model loads (``models.load_llama``), so that ``bodhi local-worker --gpu N``
has set ``CUDA_VISIBLE_DEVICES`` before llama.cpp initialises its backends.

Every completion llama-cpp-python runs, streamed or not, chat template or function-calling handler, draws its
tokens from ``Llama.generate``. ``MeteredLlama.generate`` wraps it: it records the prompt length and counts the
sampled tokens into the running generation's ``Meter``, and raises ``GenerationCancelled`` at the next token once
the meter's stop event is set (by a cancelled job, on the event loop's thread).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import llama_cpp

from bodhi_local_worker.generation import GenerationCancelled, Meter


class MeteredLlama(llama_cpp.Llama):
    """A ``llama_cpp.Llama`` loaded with ``embedding=True`` that serves chat completions and embeddings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meter: Meter | None = None
        self._embeddings_on = True

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


def load(path: str, **params: Any) -> MeteredLlama:
    """Load a GGUF file (blocking: call it in a thread).

    An alias that sets ``n_threads`` gets that many for prompt processing too: llama-cpp-python would otherwise
    use every core for it, and workers sharing a machine would fight over them.
    """
    if "n_threads" in params:
        params.setdefault("n_threads_batch", params["n_threads"])
    return MeteredLlama(model_path=path, embedding=True, verbose=False, **params)


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
