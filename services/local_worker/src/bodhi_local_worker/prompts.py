"""A request's prompt tokens, stop strings and sampling settings, for the batching engine, and the one check of
its length that every path shares.

A chat's prompt is what llama-cpp-python's own chat handler makes of it (``engine.chat_completion_arguments``: the
model's template, its stop strings, its defaults, such as a repeat penalty of 1.1), so a request gives the same
prompt batched or not. Requests the batch does not serve return None here and take the one-at-a-time path:
tools and functions (function-calling handlers parse the answer), ``response_format`` and grammars (a grammar
sampler per request), log probabilities, a completion's ``suffix`` or ``echo``, mirostat, and chat handlers that
need more than a template (multimodal ones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bodhi_local_worker.batching import SequenceRequest
from bodhi_local_worker.request_params import PASSED_AS_IS
from bodhi_local_worker.sampling import Sampling
from bodhi_shared.errors import InvalidRequest

if TYPE_CHECKING:
    from bodhi_local_worker.engine import MeteredLlama

ONE_AT_A_TIME_TEXT = ("suffix", "echo", "logprobs")  # completion fields only llama-cpp-python's own call serves


def chat_request(llm: MeteredLlama, params: dict[str, Any]) -> SequenceRequest | None:
    """The sequence a chat completion generates (blocking: tokenizes), or None when only the one-at-a-time path
    can answer it."""
    from bodhi_local_worker.engine import chat_completion_arguments  # noqa: PLC0415 (lazy: see gpu.py)

    if any(params.get(name) is not None for name in PASSED_AS_IS):
        return None
    arguments = chat_completion_arguments(llm, params)
    if arguments is None or not _batchable(arguments):
        return None
    prompt = arguments.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        return None
    return SequenceRequest(
        prompt=[int(token) for token in prompt],
        sampling=Sampling.of(arguments),
        max_tokens=arguments.get("max_tokens"),
        stops=_stops(arguments.get("stop")),
    )


def text_request(llm: MeteredLlama, params: dict[str, Any]) -> SequenceRequest | None:
    """The sequence a legacy text completion generates, or None (see the module's docstring)."""
    from bodhi_local_worker.engine import completion_prompt  # noqa: PLC0415 (lazy: see gpu.py)

    if any(params.get(name) is not None for name in ONE_AT_A_TIME_TEXT):
        return None
    prompt = completion_prompt(llm, params["prompt"])
    if not prompt:
        return None
    return SequenceRequest(
        prompt=prompt,
        sampling=Sampling.of(params),
        max_tokens=params.get("max_tokens", 16),  # llama-cpp-python's default for a completion
        stops=_stops(params.get("stop")),
    )


def _batchable(arguments: dict[str, Any]) -> bool:
    return (
        arguments.get("grammar") is None
        and arguments.get("logits_processor") is None
        and arguments.get("logprobs") is None
        and not arguments.get("mirostat_mode")
    )


def _stops(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    return [item for item in stop or [] if isinstance(item, str)]


def check_fits(prompt_tokens: int, *, limit: int, n_ctx: int, n_parallel: int, param: str) -> None:
    """400 when a prompt cannot fit in one slot's share of the context (one token is left for the answer)."""
    if prompt_tokens < limit:
        return
    shared = f" (n_ctx {n_ctx} split between {n_parallel} parallel slots)" if n_parallel > 1 else ""
    raise InvalidRequest(
        f"This request's prompt has {prompt_tokens} tokens, but this model's context window holds {limit} tokens "
        f"per request{shared}, the answer included. Shorten the prompt, or give the alias a larger n_ctx"
        + (" or a smaller n_parallel." if n_parallel > 1 else "."),
        param=param,
        code="context_length_exceeded",
    )
