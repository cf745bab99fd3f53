"""``POST /v1/chat/completions``: parse, route, dispatch to a worker, relay."""

import json
import time

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from bodhi_api.auth.principal import AnyUser
from bodhi_api.deps import RequestIdDep, ResourcesDep
from bodhi_api.dispatch import dispatch
from bodhi_api.model_routing import resolve_model
from bodhi_shared.contract import CHAT_COMPLETION_FUNCTION, ChatJob, EventKind
from bodhi_shared.errors import BodhiError
from bodhi_shared.openai_wire import parse_chat_request

router = APIRouter(tags=["inference"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    request: Request, principal: AnyUser, resources: ResourcesDep, request_id: RequestIdDep
) -> Response:
    chat, body = parse_chat_request(await request.body())
    route = await resolve_model(resources.db, chat.model)
    body["model"] = route.upstream_model
    settings = resources.settings
    job = ChatJob(
        request_id=request_id,
        channel=resources.keys.stream_channel(request_id),
        upstream=route.upstream,
        body=json.dumps(body).encode(),
        stream=chat.stream,
        pickup_deadline=time.time() + settings.pickup_timeout,
    )
    relay = await dispatch(
        resources,
        function=CHAT_COMPLETION_FUNCTION,
        payload=job.to_wire(),
        request_id=job.request_id,
        channel=job.channel,
        subject=f"model `{chat.model}`",
    )
    if chat.stream:
        return StreamingResponse(relay.sse(), media_type="text/event-stream", headers=SSE_HEADERS)
    await relay.close()
    if relay.first.kind != EventKind.RESPONSE:
        raise BodhiError(f"The worker answered a non-streamed request with a {relay.first.kind.name} event.")
    return Response(relay.first.data, media_type="application/json")
