"""The loaded models: an LRU cache of ``llama_cpp.Llama`` instances, kept between requests.

A model is keyed by its GGUF path and its context params (two aliases with the same file and params share one
instance). At most ``BODHI_LOCAL_MAX_LOADED_MODELS`` stay loaded: loading another first unloads the least
recently used idle one (a model in use is never closed under a running generation). Loading and unloading run
in a thread, one at a time; each model runs one call at a time (its lock).
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
    from bodhi_local_worker.engine import MeteredLlama

log = logging.getLogger(__name__)

ModelKey = tuple[str, tuple[tuple[str, str], ...]]


class ModelLoadFailed(Exception):
    """llama.cpp could not load the GGUF file (missing, unreadable, unsupported, too large)."""


def model_key(local: LocalModel) -> ModelKey:
    params = tuple(sorted((name, json.dumps(value, sort_keys=True)) for name, value in local.context_params.items()))
    return local.path, params


def load_params(context_params: dict[str, Any], *, gpu: int | None) -> dict[str, Any]:
    """The ``Llama`` keyword arguments: the alias's context params, all layers on the GPU by default when pinned."""
    return {"n_gpu_layers": -1 if gpu is not None else 0, **context_params}


def load_llama(local: LocalModel, *, gpu: int | None) -> MeteredLlama:
    """Load one model (blocking). ``llama_cpp`` is imported here, first, after the GPU was pinned."""
    from bodhi_local_worker import engine  # noqa: PLC0415 (lazy: see gpu.py)

    params = load_params(local.context_params, gpu=gpu)
    started = time.monotonic()
    try:
        llm = engine.load(local.path, **params)
    except (ValueError, OSError, RuntimeError, TypeError) as exc:
        raise ModelLoadFailed(str(exc)) from exc
    log.info(
        "loaded %s in %.1f s, n_gpu_layers %s; llama.cpp's devices: %s",
        local.path,
        time.monotonic() - started,
        params["n_gpu_layers"],
        "; ".join(engine.devices()) or "(unknown)",
    )
    return llm


@dataclass(eq=False)
class _Loaded:
    key: ModelKey
    llm: MeteredLlama
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class ModelCache:
    def __init__(
        self, max_loaded: int, *, gpu: int | None, load: Callable[[LocalModel, int | None], MeteredLlama] | None = None
    ) -> None:
        self._max_loaded = max(1, max_loaded)
        self._gpu = gpu
        self._load_model = load or (lambda local, gpu: load_llama(local, gpu=gpu))  # blocking: run in a thread
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
    async def use(self, local: LocalModel) -> AsyncIterator[MeteredLlama]:
        """The loaded model of ``local`` (loaded now if need be), held for this caller alone."""
        entry = await self._checkout(local)
        try:
            async with entry.lock:
                yield entry.llm
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
            await in_thread(entry.llm.close)

    async def close(self) -> None:
        """Unload everything, each model once its running call has ended."""
        async with self._lock:
            while self._entries:
                _, entry = self._entries.popitem(last=False)
                async with entry.lock:
                    await in_thread(entry.llm.close)
