"""The OpenAI inference endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions`` (legacy text
completions) and ``POST /v1/embeddings``; and ``InferenceCall``, what every inference route (these, and those of
``routes.messages`` and ``routes.responses``) hands to ``inference.run_inference``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from bodhi_api.auth.principal import AnyUser, Principal
from bodhi_api.deps import ClientRequestIdDep, RequestIdDep, ResourcesDep
from bodhi_api.inbound_formats import InboundRequest
from bodhi_api.inference import run_inference
from bodhi_api.resources import Resources
from bodhi_shared.contract import Endpoint

router = APIRouter(tags=["inference"])


@dataclass(frozen=True, slots=True)
class InferenceCall:
    """One inference request as its route received it: who asks, with which ids, on which connection."""

    request: Request
    principal: Principal
    resources: Resources
    request_id: str
    client_request_id: str | None

    async def run(self, endpoint: Endpoint, inbound: type[InboundRequest] | None = None) -> Response:
        """``inbound``: the format of a route other than OpenAI's (``inbound_formats``)."""
        resources, principal, request_id = self.resources, self.principal, self.request_id
        return await run_inference(
            resources,
            principal,
            endpoint=endpoint,
            raw_body=await self.request.body(),
            request_id=request_id,
            client_request_id=self.client_request_id,
            receive=self.request.receive,
            inbound=None
            if inbound is None
            else inbound(resources, principal, request_id=request_id, state=self.request.scope["state"]),
        )


async def inference_call(
    request: Request,
    principal: AnyUser,
    resources: ResourcesDep,
    request_id: RequestIdDep,
    client_request_id: ClientRequestIdDep,
) -> InferenceCall:
    return InferenceCall(request, principal, resources, request_id, client_request_id)


Call = Annotated[InferenceCall, Depends(inference_call)]


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(call: Call) -> Response:
    return await call.run(Endpoint.CHAT_COMPLETIONS)


@router.post("/v1/completions", response_model=None)
async def completions(call: Call) -> Response:
    return await call.run(Endpoint.COMPLETIONS)


@router.post("/v1/embeddings", response_model=None)
async def embeddings(call: Call) -> Response:
    return await call.run(Endpoint.EMBEDDINGS)
