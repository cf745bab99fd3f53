"""Anthropic Messages: ``POST /v1/messages`` on every model (translated by the workers, or passed through to an
Anthropic provider, see ``inbound_formats``). Its token may come as ``x-api-key`` (``auth.principal``), its
``anthropic-version`` and ``anthropic-beta`` headers are accepted and ignored, and every error it answers is in
Anthropic's shape (``error_handlers.ERROR_SHAPES``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from bodhi_api.inbound_formats import MessagesRequest
from bodhi_api.routes.inference import Call
from bodhi_shared.contract import Endpoint

router = APIRouter(tags=["inference"])


@router.post("/v1/messages", response_model=None)
async def create_message(call: Call) -> Response:
    return await call.run(Endpoint.MESSAGES, MessagesRequest)
