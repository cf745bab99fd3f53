"""The OpenAI inference endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions`` (legacy text
completions) and ``POST /v1/embeddings``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from bodhi_api.auth.principal import AnyUser
from bodhi_api.deps import ClientRequestIdDep, RequestIdDep, ResourcesDep
from bodhi_api.inference import run_inference
from bodhi_shared.contract import Endpoint

router = APIRouter(tags=["inference"])


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    request: Request,
    principal: AnyUser,
    resources: ResourcesDep,
    request_id: RequestIdDep,
    client_request_id: ClientRequestIdDep,
) -> Response:
    return await run_inference(
        resources,
        principal,
        endpoint=Endpoint.CHAT_COMPLETIONS,
        raw_body=await request.body(),
        request_id=request_id,
        client_request_id=client_request_id,
        receive=request.receive,
    )


@router.post("/v1/completions", response_model=None)
async def completions(
    request: Request,
    principal: AnyUser,
    resources: ResourcesDep,
    request_id: RequestIdDep,
    client_request_id: ClientRequestIdDep,
) -> Response:
    return await run_inference(
        resources,
        principal,
        endpoint=Endpoint.COMPLETIONS,
        raw_body=await request.body(),
        request_id=request_id,
        client_request_id=client_request_id,
        receive=request.receive,
    )


@router.post("/v1/embeddings", response_model=None)
async def embeddings(
    request: Request,
    principal: AnyUser,
    resources: ResourcesDep,
    request_id: RequestIdDep,
    client_request_id: ClientRequestIdDep,
) -> Response:
    return await run_inference(
        resources,
        principal,
        endpoint=Endpoint.EMBEDDINGS,
        raw_body=await request.body(),
        request_id=request_id,
        client_request_id=client_request_id,
        receive=request.receive,
    )
