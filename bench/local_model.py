"""The local benchmarks' model: a ~100M-parameter random-weight llama GGUF (F16), written once into bench/.cache/.

bench/local.py and bench/local_batching.py measure with it; deploy/gpu_check.py writes it for its GPU check.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

if __package__:  # imported as `bench.local_model`: bench/ is not on sys.path
    from bench import common
else:  # run as a script, or imported by one: bench/ is the script directory
    import common  # puts the repository root on sys.path, for `tests.support`
from tests.support import tiny_gguf

log = common.logger("local-bench")
CACHE = common.BENCH / ".cache"

# The model: llama architecture, byte vocabulary (259 tokens), F16 matrices, ~99.5M parameters.
N_EMBD, N_LAYER, N_HEAD, N_FF = 768, 12, 12, 2560
HEAD_DIM = N_EMBD // N_HEAD
MODEL_PATH = CACHE / f"bench-llama-{N_EMBD}x{N_LAYER}-ff{N_FF}-f16.gguf"
MODEL_SEED = 0
# The only tokens the model can ever pick: printable ASCII without "<" (see write_bench_gguf).
EMITTABLE = [byte for byte in range(0x20, 0x7F) if byte != ord("<")]


def write_bench_gguf(path: Path, *, seed: int = MODEL_SEED) -> int:
    """Write the benchmark model (tests/support/tiny_gguf.py, larger and in F16); return its parameter count.

    The output matrix has zero rows for every token but ``EMITTABLE``: those logits are 0 while the others are
    random, so greedy decoding never picks end-of-generation, a control token or half of a UTF-8 character, and
    never "<" (the start of the chat format's stop string "</s>", which llama-cpp-python would hold back). Every
    generated token is one ASCII character in its own chunk: tokens can be counted from the text alone.
    """
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)

    def random(*shape: int) -> Any:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    def ones(size: int) -> Any:
        return np.ones(size, dtype=np.float32)  # norms stay F32, as llama.cpp's converters write them

    name = tiny_gguf.tensor_name
    n_special = len(tiny_gguf.SPECIAL_TOKENS)
    output = random(tiny_gguf.N_VOCAB, N_EMBD)
    silent = np.ones(tiny_gguf.N_VOCAB, dtype=bool)
    silent[[n_special + byte for byte in EMITTABLE]] = False
    output[silent] = 0
    t = gguf.MODEL_TENSOR
    tensors = {name(t.TOKEN_EMBD): random(tiny_gguf.N_VOCAB, N_EMBD), name(t.OUTPUT_NORM): ones(N_EMBD)}
    tensors[name(t.OUTPUT)] = output
    for layer in range(N_LAYER):
        tensors |= tiny_gguf.layer_tensors(
            layer, n_embd=N_EMBD, n_head=N_HEAD, head_dim=HEAD_DIM, n_ff=N_FF, random=random, ones=ones
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")  # renamed when complete: an interrupted run leaves no broken model
    tiny_gguf.write_llama_gguf(
        partial,
        tensors,
        name="bodhi-bench-llama",
        file_type=gguf.LlamaFileType.MOSTLY_F16,
        n_ctx=2048,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_ff=N_FF,
        n_head=N_HEAD,
    )
    partial.replace(path)
    return sum(int(data.size) for data in tensors.values())


def parameter_count(path: Path) -> int:
    import gguf

    return sum(int(tensor.n_elements) for tensor in gguf.GGUFReader(path).tensors)


def ensure_model() -> int:
    if MODEL_PATH.exists():
        log(f"model {MODEL_PATH.relative_to(common.ROOT)} is there")
        return parameter_count(MODEL_PATH)
    log(f"writing the model to {MODEL_PATH.relative_to(common.ROOT)} (once)")
    started = time.monotonic()
    params = write_bench_gguf(MODEL_PATH)
    size = MODEL_PATH.stat().st_size / 1e6
    log(f"{params / 1e6:.1f}M parameters, {size:.0f} MB in {time.monotonic() - started:.1f} s")
    return params
