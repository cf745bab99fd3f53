"""The OpenAI request fields Bodhi reads; every other field passes through untouched, unparsed."""

import json
from dataclasses import dataclass
from typing import Any

from bodhi_shared.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """The part of an inference request (chat completion, embeddings) the gateway needs to route it."""

    model: str
    stream: bool = False


def parse_inference_request(
    raw: bytes, *, endpoint: str = "chat/completions"
) -> tuple[InferenceRequest, dict[str, Any]]:
    """Parse a request body; return the routed fields and the whole body as a dict.

    Checked by hand rather than with a pydantic model: a model with ``extra="allow"`` would copy every message
    of every request on the hot path just to read two fields.
    """
    what = "`model` and `messages`" if endpoint == "chat/completions" else "`model` and `input`"
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON ({exc}). Send a JSON object with {what}.") from exc
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object with {what}.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "You must provide a model parameter: set `model` to a name listed by GET /v1/models.", param="model"
        )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("Invalid value for `stream`: expected true or false.", param="stream")
    return InferenceRequest(model=model, stream=stream), body
