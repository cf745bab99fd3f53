"""OpenAI request bodies -> llama-cpp-python arguments, and llama-cpp-python answers -> OpenAI bodies.

Unknown fields are ignored (as OpenAI-compatible servers do); fields llama.cpp understands are type-checked here
so that a malformed request is a 400, not an error deep inside llama.cpp.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from bodhi_shared.errors import InvalidRequest

NUMBERS = ("temperature", "top_p", "min_p", "typical_p", "presence_penalty", "frequency_penalty", "repeat_penalty")
INTEGERS = ("top_k", "seed", "max_tokens", "top_logprobs")
PASSED_AS_IS = ("tools", "tool_choice", "functions", "function_call", "response_format", "logprobs")


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body)
    except ValueError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(request, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return request


def _number(request: dict[str, Any], name: str, kinds: tuple[type, ...]) -> Any:
    value = request.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
        raise InvalidRequest(f"'{name}' must be a number.", param=name)
    return value


def chat_params(request: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``Llama.create_chat_completion`` (without ``stream``)."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise InvalidRequest("'messages' must be a non-empty array of message objects.", param="messages")
    if request.get("n") not in (None, 1):
        raise InvalidRequest("Local models generate one choice per request: 'n' must be 1.", param="n")
    params: dict[str, Any] = {"messages": messages, **_sampling(request)}
    params |= {name: request[name] for name in PASSED_AS_IS if request.get(name) is not None}
    if (stop := request.get("stop")) is not None:
        params["stop"] = _stop(stop)
    if (bias := request.get("logit_bias")) is not None:
        params["logit_bias"] = _logit_bias(bias)
    return params


def completion_params(request: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``Llama.create_completion`` (without ``stream``), for a legacy text completion."""
    if request.get("n") not in (None, 1) or request.get("best_of") not in (None, 1):
        raise InvalidRequest("Local models generate one choice per request: 'n' and 'best_of' must be 1.", param="n")
    params: dict[str, Any] = {"prompt": _prompt(request.get("prompt")), **_sampling(request)}
    params.pop("top_logprobs", None)  # a chat field; a completion asks with `logprobs: N`
    if (suffix := request.get("suffix")) is not None:
        if not isinstance(suffix, str):
            raise InvalidRequest("'suffix' must be a string.", param="suffix")
        params["suffix"] = suffix
    if (echo := request.get("echo")) is not None:
        if not isinstance(echo, bool):
            raise InvalidRequest("'echo' must be true or false.", param="echo")
        params["echo"] = echo
    if (logprobs := _number(request, "logprobs", (int,))) is not None:
        params["logprobs"] = logprobs
    if (stop := request.get("stop")) is not None:
        params["stop"] = _stop(stop)
    if (bias := request.get("logit_bias")) is not None:
        params["logit_bias"] = _logit_bias(bias)
    return params


def _prompt(prompt: Any) -> str | list[int]:
    """One prompt, as text or token ids; an array of one such prompt is that prompt."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return prompt
    raise InvalidRequest(
        "'prompt' must be a string or an array of token ids: local models complete one prompt per request.",
        param="prompt",
    )


def _sampling(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("max_tokens") is None and request.get("max_completion_tokens") is not None:
        request = {**request, "max_tokens": request["max_completion_tokens"]}
    params: dict[str, Any] = {}
    for name in NUMBERS:
        if (value := _number(request, name, (int, float))) is not None:
            params[name] = float(value)
    for name in INTEGERS:
        if (value := _number(request, name, (int,))) is not None:
            params[name] = value
    return params


def _stop(stop: Any) -> list[str]:
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise InvalidRequest("'stop' must be a string or an array of strings.", param="stop")
    return stops


def _logit_bias(bias: Any) -> dict[int, float]:
    try:
        if not isinstance(bias, dict):
            raise TypeError
        return {int(token): float(value) for token, value in bias.items()}
    except (TypeError, ValueError):
        raise InvalidRequest("'logit_bias' must map token ids to numbers.", param="logit_bias") from None


def wants_usage_chunk(request: dict[str, Any]) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def embedding_inputs(request: dict[str, Any]) -> list[str]:
    value = request.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
        raise InvalidRequest("'input' must be a string or a non-empty array of strings.", param="input")
    return inputs


def embeddings_body(request: dict[str, Any], vectors: list[list[float]], *, model: str, prompt_tokens: int) -> bytes:
    """The OpenAI ``list`` of embeddings; base64 little-endian float32 when ``encoding_format`` asks for it."""
    as_base64 = request.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector,
        }
        for index, vector in enumerate(vectors)
    ]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return to_json({"object": "list", "data": data, "model": model, "usage": usage})


def usage_meta(usage: dict[str, Any]) -> dict[str, Any]:
    """The counts of a completion's usage, for its RESPONSE event (the cached prompt tokens too, where counted)."""
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    meta: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if isinstance(cached, int) and not isinstance(cached, bool):
        meta["prompt_tokens_details"] = {"cached_tokens": cached}
    return meta


def to_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def sse_frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + to_json(chunk) + b"\n\n"
