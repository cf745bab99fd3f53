"""OpenAI wire models: only the fields Bodhi reads; every other field passes through untouched."""

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bodhi_shared.errors import InvalidRequest


class InferenceRequest(BaseModel):
    """The part of an inference request (chat completion, embeddings) the gateway needs to route it."""

    model_config = ConfigDict(extra="allow")

    model: str
    stream: bool = False


def parse_inference_request(
    raw: bytes, *, endpoint: str = "chat/completions"
) -> tuple[InferenceRequest, dict[str, Any]]:
    """Parse a request body; return the routed fields and the whole body as a dict."""
    what = "`model` and `messages`" if endpoint == "chat/completions" else "`model` and `input`"
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON ({exc}). Send a JSON object with {what}.") from exc
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object with {what}.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest(
            "You must provide a model parameter: set `model` to a name listed by GET /v1/models.",
            param="model",
        )
    try:
        request = InferenceRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"Invalid value for `{field}`: {first['msg']}.", param=field) from exc
    return request, body
