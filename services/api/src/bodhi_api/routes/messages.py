"""Anthropic Messages: ``POST /v1/messages`` on every model (translated by the workers, or passed through to an
Anthropic provider, see ``inbound_formats``). Its token may come as ``x-api-key`` (``auth.principal``), its
``anthropic-version`` and ``anthropic-beta`` headers are accepted and ignored, and every error it answers is in
Anthropic's shape (``error_handlers.ERROR_SHAPES``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from bodhi_api.auth.principal import AnyUser
from bodhi_api.deps import ClientRequestIdDep, RequestIdDep, ResourcesDep
from bodhi_api.inbound_formats import MessagesRequest
from bodhi_api.inference import run_inference
from bodhi_shared.contract import Endpoint

router = APIRouter(tags=["inference"])


@router.post("/v1/messages", response_model=None)
async def create_message(
    request: Request,
    principal: AnyUser,
    resources: ResourcesDep,
    request_id: RequestIdDep,
    client_request_id: ClientRequestIdDep,
) -> Response:
    return await run_inference(
        resources,
        principal,
        endpoint=Endpoint.MESSAGES,
        raw_body=await request.body(),
        request_id=request_id,
        client_request_id=client_request_id,
        receive=request.receive,
        inbound=MessagesRequest(resources, principal, request_id=request_id, state=request.scope["state"]),
    )
