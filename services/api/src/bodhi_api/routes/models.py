"""``GET /v1/models``: the models a client may request, in the OpenAI list shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bodhi_api.auth.principal import AnyUser
from bodhi_api.deps import ResourcesDep
from bodhi_api.model_routing import known_model_names

router = APIRouter(tags=["inference"])


@router.get("/v1/models")
async def models_list(principal: AnyUser, resources: ResourcesDep) -> dict[str, Any]:
    names = await known_model_names(resources.db)
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "bodhi"} for n in names]}
