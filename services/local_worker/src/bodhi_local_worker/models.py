"""The loaded models: an LRU cache of ``LoadedModel``s (a ``llama_cpp.Llama`` and its batching engine), kept
between requests.

A model is keyed by its GGUF path and its context params (two aliases with the same file and params share one
instance). At most ``BODHI_LOCAL_MAX_LOADED_MODELS`` stay loaded: loading another first unloads the least
recently used idle one (a model in use is never closed under a running generation). Loading and unloading run
in a thread, one at a time.

Each model serves ``n_parallel`` requests at once (the alias's context param; when it sets none,
``BODHI_LOCAL_N_PARALLEL``, else 4 on the CPU and 8 on a GPU, fewer if its ``n_ctx`` would leave a slot less than
512 tokens: ``n_parallel_of``): above 1, its ``batching.BatchingEngine`` decodes them in one batch, and
``LoadedModel.exclusive`` lends the whole context to a request the batch cannot serve. With ``n_parallel`` 1 the
model runs one llama-cpp-python call at a time, as before batching (``exclusive`` is then its lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bodhi_local_worker.generation import in_thread, settle
from bodhi_shared.contract import LocalModel

if TYPE_CHECKING:
    from bodhi_local_worker.batching import BatchingEngine
    from bodhi_local_worker.engine import MeteredLlama

log = logging.getLogger(__name__)

ModelKey = tuple[str, tuple[tuple[str, str], ...]]


class ModelLoadFailed(Exception):
    """llama.cpp could not load the GGUF file (missing, unreadable, unsupported, too large)."""


def model_key(local: LocalModel) -> ModelKey:
    params = tuple(sorted((name, json.dumps(value, sort_keys=True)) for name, value in local.context_params.items()))
    return local.path, params


DEFAULT_N_PARALLEL_CPU = 4
DEFAULT_N_PARALLEL_GPU = 8
MAX_N_PARALLEL = 64
# A default never gives a slot fewer tokens than this: an alias with n_ctx 512 keeps its 512 tokens per request
# (and runs one at a time) unless it asks for n_parallel itself.
MIN_DEFAULT_SLOT_CONTEXT = 512


def n_parallel_of(context_params: dict[str, Any], *, gpu: int | None, default: int | None = None) -> int:
    """How many requests a model serves at once: the alias's ``n_parallel``; else ``default``
    (``BODHI_LOCAL_N_PARALLEL``), else 4 on the CPU and 8 on a GPU, but no more than the alias's ``n_ctx`` has room
    for at ``MIN_DEFAULT_SLOT_CONTEXT`` tokens each. Within 1 and ``MAX_N_PARALLEL``."""
    value = context_params.get("n_parallel")
    if not isinstance(value, int) or isinstance(value, bool):
        value = default if default is not None else (DEFAULT_N_PARALLEL_CPU if gpu is None else DEFAULT_N_PARALLEL_GPU)
        n_ctx = context_params.get("n_ctx")
        if isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and n_ctx > 0:
            value = min(value, n_ctx // MIN_DEFAULT_SLOT_CONTEXT)
    return max(1, min(MAX_N_PARALLEL, value))


def load_params(context_params: dict[str, Any], *, gpu: int | None, n_parallel: int | None = None) -> dict[str, Any]:
    """The ``engine.load`` keyword arguments: the alias's context params, all layers on the GPU by default when
    pinned, and how many requests it serves at once."""
    params = {"n_gpu_layers": -1 if gpu is not None else 0, **context_params}
    params["n_parallel"] = n_parallel_of(context_params, gpu=gpu, default=n_parallel)
    return params


@dataclass(eq=False)
class LoadedModel:
    """A loaded model: its ``Llama`` and, when it serves several requests at once, its batching engine."""

    llm: MeteredLlama
    batcher: BatchingEngine | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def slot_context(self) -> int:
        """The tokens one request may use, its prompt and answer together."""
        return self.batcher.slot_context if self.batcher is not None else int(self.llm.n_ctx())

    @property
    def n_parallel(self) -> int:
        return self.batcher.n_parallel if self.batcher is not None else 1

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[MeteredLlama]:
        """The ``Llama`` for the caller alone (llama-cpp-python's own calls), once every batched sequence ended."""
        async with self.lock:
            if self.batcher is None:
                yield self.llm
            else:
                async with self.batcher.exclusive():
                    yield self.llm

    def close(self) -> None:
        """Stop the batching engine and free the model (blocking)."""
        if self.batcher is not None:
            self.batcher.close()
        self.llm.close()


def load_llama(local: LocalModel, *, gpu: int | None, n_parallel: int | None = None) -> LoadedModel:
    """Load one model (blocking). ``llama_cpp`` is imported here, first, after the GPU was pinned."""
    from bodhi_local_worker import engine  # noqa: PLC0415 (lazy: see gpu.py)

    params = load_params(local.context_params, gpu=gpu, n_parallel=n_parallel)
    started = time.monotonic()
    try:
        llm = engine.load(local.path, **params)
        parallel = params["n_parallel"]
        batcher = engine.batching_engine(llm, n_parallel=parallel, name=local.alias) if parallel > 1 else None
    except (ValueError, OSError, RuntimeError, TypeError) as exc:
        raise ModelLoadFailed(str(exc)) from exc
    log.info(
        "loaded %s in %.1f s, n_gpu_layers %s, n_ctx %s, %s parallel (%s tokens each); llama.cpp's devices: %s",
        local.path,
        time.monotonic() - started,
        params["n_gpu_layers"],
        llm.n_ctx(),
        parallel,
        batcher.slot_context if batcher is not None else llm.n_ctx(),
        "; ".join(engine.devices()) or "(unknown)",
    )
    return LoadedModel(llm, batcher)


@dataclass(eq=False)
class _Loaded:
    key: ModelKey
    model: LoadedModel
    users: int = 0


class ModelCache:
    def __init__(
        self,
        max_loaded: int,
        *,
        gpu: int | None,
        n_parallel: int | None = None,
        load: Callable[[LocalModel, int | None], LoadedModel] | None = None,
    ) -> None:
        self._max_loaded = max(1, max_loaded)
        self._gpu = gpu
        # Blocking: run in a thread. ``n_parallel``: the default of aliases that set none.
        self._load_model = load or (lambda local, gpu: load_llama(local, gpu=gpu, n_parallel=n_parallel))
        self._entries: OrderedDict[ModelKey, _Loaded] = OrderedDict()  # least recently used first
        self._lock = asyncio.Lock()  # loading and unloading

    @property
    def loaded(self) -> list[ModelKey]:
        """The keys of the loaded models, least recently used first."""
        return list(self._entries)

    @property
    def loaded_count(self) -> int:
        """How many models are loaded: safe to read from another thread (a metrics scrape)."""
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def use(self, local: LocalModel) -> AsyncIterator[LoadedModel]:
        """The loaded model of ``local`` (loaded now if need be), kept loaded while the caller uses it: shared with
        the other callers (its batching engine), or held alone through ``LoadedModel.exclusive``."""
        entry = await self._checkout(local)
        try:
            yield entry.model
        finally:
            entry.users -= 1
            if len(self._entries) > self._max_loaded:  # over capacity while every model was busy
                async with self._lock:
                    await self._unload_idle(keep=self._max_loaded)

    async def _checkout(self, local: LocalModel) -> _Loaded:
        key = model_key(local)
        async with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                await self._unload_idle(keep=self._max_loaded - 1)
                entry = await self._load(key, local)
            self._entries.move_to_end(key)
            entry.users += 1
            return entry

    async def _load(self, key: ModelKey, local: LocalModel) -> _Loaded:
        log.info("loading %s for alias %s", local.path, local.alias)
        # In the job's context: the lines logged while loading name the request that asked for the model.
        load = functools.partial(contextvars.copy_context().run, self._load_model, local, self._gpu)
        future = asyncio.get_running_loop().run_in_executor(None, load)
        try:
            await settle(future)
        except asyncio.CancelledError:
            if not future.cancelled() and future.exception() is None:
                # The job that asked for it was cancelled meanwhile: keep it for the next one.
                self._entries[key] = _Loaded(key, future.result())
            raise
        entry = self._entries[key] = _Loaded(key, future.result())
        return entry

    async def _unload_idle(self, *, keep: int) -> None:
        for key in [key for key, entry in self._entries.items() if entry.users == 0]:
            if len(self._entries) <= keep:
                return
            entry = self._entries.pop(key)
            log.info("unloading %s (least recently used)", key[0])
            await in_thread(entry.model.close)

    async def close(self) -> None:
        """Unload everything, each model once its one-at-a-time call has ended (batched sequences still running
        end with an error)."""
        async with self._lock:
            while self._entries:
                _, entry = self._entries.popitem(last=False)
                async with entry.model.lock:
                    await in_thread(entry.model.close)
