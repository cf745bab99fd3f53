"""Pinning a local worker to one GPU: ``CUDA_VISIBLE_DEVICES`` must be set before llama.cpp is imported.

llama.cpp's CUDA backend reads the variable once, when ``llama_cpp`` is first imported and its library loaded.
``bodhi local-worker --gpu N`` therefore calls ``pin_gpu`` first thing, and only ``engine`` imports ``llama_cpp``,
itself imported when the first model loads. Inside the worker, device N is then device 0.
"""

from __future__ import annotations

import os
import sys


def pin_gpu(gpu: int | None) -> None:
    """Make GPU ``gpu`` the only one this process sees; without one, leave the environment as it is (CPU)."""
    if gpu is None:
        return
    if "llama_cpp" in sys.modules:
        raise RuntimeError("llama_cpp was imported before the GPU was pinned: CUDA_VISIBLE_DEVICES would be ignored")
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


def visible_devices() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
