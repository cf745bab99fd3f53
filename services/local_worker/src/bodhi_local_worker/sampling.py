"""How one sequence picks its tokens: the sampling settings of a request, with llama-cpp-python's defaults.

A batched sequence samples with a sampler chain of its own (``engine.Sampler``), built from these settings in the
order llama-cpp-python builds its own, so that a request gives the same tokens batched or not (greedy at
temperature 0 always; with a seed, the same draw).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# llama-cpp-python's ``Llama(last_n_tokens_size=64)``: how many recent tokens the repetition penalties look at.
PENALTY_LAST_N = 64


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)
    penalty_last_n: int = PENALTY_LAST_N

    @classmethod
    def of(cls, kwargs: dict[str, Any]) -> Sampling:
        """From ``Llama.create_completion`` keyword arguments (what a chat handler passes on, or a request's)."""
        defaults = cls()
        bias = kwargs.get("logit_bias") or {}
        return cls(
            temperature=float(_given(kwargs, "temperature", defaults.temperature)),
            top_k=int(_given(kwargs, "top_k", defaults.top_k)),
            top_p=float(_given(kwargs, "top_p", defaults.top_p)),
            min_p=float(_given(kwargs, "min_p", defaults.min_p)),
            typical_p=float(_given(kwargs, "typical_p", defaults.typical_p)),
            repeat_penalty=float(_given(kwargs, "repeat_penalty", defaults.repeat_penalty)),
            frequency_penalty=float(_given(kwargs, "frequency_penalty", defaults.frequency_penalty)),
            presence_penalty=float(_given(kwargs, "presence_penalty", defaults.presence_penalty)),
            seed=kwargs.get("seed"),
            logit_bias={int(token): float(value) for token, value in bias.items()},
        )


def _given(kwargs: dict[str, Any], name: str, default: Any) -> Any:
    value = kwargs.get(name)
    return default if value is None else value
