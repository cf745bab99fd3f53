"""The LRU of loaded models, with a stand-in loader (llama.cpp itself runs in the worker processes' tests)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import pytest

from bodhi_local_worker.models import LoadedModel, ModelCache, ModelLoadFailed, load_params, model_key, n_parallel_of
from bodhi_shared.contract import LocalModel

if TYPE_CHECKING:
    from bodhi_local_worker.engine import MeteredLlama


class StandIn:
    def __init__(self, local: LocalModel) -> None:
        self.local = local
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Loader:
    def __init__(self) -> None:
        self.loaded: list[StandIn] = []

    def __call__(self, local: LocalModel, gpu: int | None) -> LoadedModel:
        if local.path == "missing.gguf":
            raise ModelLoadFailed("Model path does not exist")
        self.loaded.append(StandIn(local))
        return LoadedModel(cast("MeteredLlama", self.loaded[-1]))


def local(n_ctx: int, alias: str = "tiny", path: str = "tiny.gguf") -> LocalModel:
    return LocalModel(alias=alias, path=path, context_params={"n_ctx": n_ctx})


async def test_aliases_with_the_same_file_and_params_share_one_model() -> None:
    loader = Loader()
    cache = ModelCache(2, gpu=None, load=loader)
    async with cache.use(local(256, "one")) as first:
        pass
    async with cache.use(local(256, "two")) as second:
        pass
    assert first is second
    assert len(loader.loaded) == 1
    assert model_key(local(256)) != model_key(local(512))


async def test_the_least_recently_used_idle_model_is_unloaded_first() -> None:
    loader = Loader()
    cache = ModelCache(2, gpu=None, load=loader)
    for n_ctx in (128, 256, 128, 512):  # 128 is used again after 256: 256 is the least recently used
        async with cache.use(local(n_ctx)):
            pass
    assert cache.loaded == [model_key(local(128)), model_key(local(512))]
    assert [(m.local.context_params["n_ctx"], m.closed) for m in loader.loaded] == [
        (128, False),
        (256, True),
        (512, False),
    ]
    await cache.close()
    assert cache.loaded == []
    assert all(m.closed for m in loader.loaded)


async def test_a_model_in_use_is_not_unloaded() -> None:
    loader = Loader()
    cache = ModelCache(1, gpu=None, load=loader)
    async with cache.use(local(128)):
        async with cache.use(local(256)):
            assert len(cache.loaded) == 2  # over the bound while both run
        assert cache.loaded == [model_key(local(128))]  # the idle one went, the busy one stays
        assert not loader.loaded[0].closed


async def test_a_model_serves_one_exclusive_call_at_a_time() -> None:
    cache = ModelCache(1, gpu=None, load=Loader())
    order: list[str] = []

    async def call(name: str) -> None:
        async with cache.use(local(128)) as model, model.exclusive():
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(call("a"), call("b"))
    assert order == ["a in", "a out", "b in", "b out"]


async def test_a_failed_load_leaves_nothing_behind() -> None:
    cache = ModelCache(1, gpu=None, load=Loader())
    with pytest.raises(ModelLoadFailed):
        async with cache.use(local(128, path="missing.gguf")):
            pass
    assert cache.loaded == []


def test_gpu_layers_default_to_all_on_a_gpu_and_none_on_the_cpu() -> None:
    assert load_params({"n_ctx": 64}, gpu=None) == {"n_gpu_layers": 0, "n_ctx": 64, "n_parallel": 1}
    assert load_params({}, gpu=1) == {"n_gpu_layers": -1, "n_parallel": 8}
    assert load_params({"n_gpu_layers": 10, "n_parallel": 1}, gpu=1) == {"n_gpu_layers": 10, "n_parallel": 1}


def test_n_parallel_comes_from_the_alias_then_the_worker_then_the_device() -> None:
    assert n_parallel_of({"n_parallel": 2}, gpu=None, default=6) == 2
    assert n_parallel_of({}, gpu=None, default=6) == 6
    assert n_parallel_of({}, gpu=None) == 4
    assert n_parallel_of({}, gpu=0) == 8
    assert n_parallel_of({"n_parallel": 0}, gpu=None) == 1
    assert n_parallel_of({"n_parallel": 1000}, gpu=None) == 64
    assert n_parallel_of({"n_parallel": True}, gpu=None) == 4  # a boolean is no count
    # A default leaves every slot 512 tokens at least; an alias's own n_parallel is taken as it is.
    assert n_parallel_of({"n_ctx": 512}, gpu=None) == 1
    assert n_parallel_of({"n_ctx": 1536}, gpu=None) == 3
    assert n_parallel_of({"n_ctx": 8192}, gpu=0) == 8
    assert n_parallel_of({"n_ctx": 0}, gpu=None) == 4  # the model's own context: large
    assert n_parallel_of({"n_ctx": 512, "n_parallel": 4}, gpu=None) == 4
