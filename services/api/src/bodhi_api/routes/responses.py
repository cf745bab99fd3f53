"""The OpenAI Responses API: ``POST /v1/responses`` on every model (translated by the workers, see
``inbound_formats``), and the stored responses it keeps: ``GET`` and ``DELETE /v1/responses/{response_id}``, the
caller's own only (another user's is a 404, as an unknown one)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from bodhi_api.auth.principal import AnyUser
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotFound
from bodhi_api.inbound_formats import ResponsesRequest
from bodhi_api.responses_store import delete_response, find_response
from bodhi_api.routes.inference import Call
from bodhi_shared.api_formats.sse import to_json
from bodhi_shared.contract import Endpoint

router = APIRouter(tags=["inference"])

ResponseId = Annotated[str, Path(description="A response's `id` (`resp_...`).")]


@router.post("/v1/responses", response_model=None)
async def create_response(call: Call) -> Response:
    return await call.run(Endpoint.RESPONSES, ResponsesRequest)


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", code="response_not_found")


@router.get("/v1/responses/{response_id}", response_model=None)
async def get_response(response_id: ResponseId, principal: AnyUser, resources: ResourcesDep) -> Response:
    stored = await find_response(resources.db, response_id, user_id=principal.user.id)
    if stored is None:
        raise _not_found(response_id)
    return Response(to_json(stored.response), media_type="application/json")


@router.delete("/v1/responses/{response_id}")
async def remove_response(response_id: ResponseId, principal: AnyUser, resources: ResourcesDep) -> dict[str, Any]:
    if not await delete_response(resources.db, response_id, user_id=principal.user.id):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}
