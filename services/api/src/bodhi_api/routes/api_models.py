"""``/bodhi/v1/models/api``: API models (read: any user; write, fetch-models, test: power_user and above)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Response
from starlette.responses import Response as RawResponse

from bodhi_api.api_models.schemas import (
    API_FORMATS,
    ApiModelCreate,
    ApiModelUpdate,
    ProviderTarget,
    public_api_model,
    validate_api_key,
    validate_base_url,
    validate_fields,
)
from bodhi_api.api_models.sealing import ephemeral_row, seal_api_key
from bodhi_api.api_models.store import (
    create_api_model,
    delete_api_model,
    get_api_model,
    list_api_models,
    update_api_model,
)
from bodhi_api.auth.principal import AnyUser, PowerUser
from bodhi_api.deps import RequestIdDep, ResourcesDep
from bodhi_api.dispatch import QueueTarget, dispatch
from bodhi_api.http_errors import NotFound
from bodhi_shared.contract import (
    FETCH_MODELS_FUNCTION,
    TEST_CONNECTION_FUNCTION,
    EventKind,
    ProviderCheckJob,
    Upstream,
)
from bodhi_shared.errors import BodhiError, InvalidRequest

router = APIRouter(tags=["api-models"])
BASE = "/bodhi/v1/models/api"


def _id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"No API model with id `{raw}`.") from None


async def _existing(resources: ResourcesDep, raw_id: str) -> Any:
    row = await get_api_model(resources.db, _id(raw_id))
    if row is None:
        raise NotFound(f"No API model with id `{raw_id}`.")
    return row


@router.get(BASE)
async def api_models_list(principal: AnyUser, resources: ResourcesDep) -> dict[str, list[dict[str, Any]]]:
    return {"data": [public_api_model(r) for r in await list_api_models(resources.db)]}


@router.get(f"{BASE}/formats")
async def api_formats(principal: AnyUser) -> dict[str, list[str]]:
    return {"data": list(API_FORMATS)}


@router.post(BASE, status_code=201)
async def api_models_create(body: ApiModelCreate, principal: PowerUser, resources: ResourcesDep) -> dict[str, Any]:
    fields = validate_fields(body)
    api_key = validate_api_key(body.api_key)
    api_model_id = uuid.uuid4()
    sealed, hint = seal_api_key(resources.settings, api_key, row=str(api_model_id))
    row = await create_api_model(
        resources.db,
        api_model_id=api_model_id,
        fields=fields,
        sealed_key=sealed,
        key_hint=hint,
        created_by=principal.user.id,
    )
    await resources.routes_changed()
    return public_api_model(row)


@router.get(f"{BASE}/{{api_model_id}}")
async def api_models_get(api_model_id: str, principal: AnyUser, resources: ResourcesDep) -> dict[str, Any]:
    return public_api_model(await _existing(resources, api_model_id))


@router.put(f"{BASE}/{{api_model_id}}")
async def api_models_update(
    api_model_id: str, body: ApiModelUpdate, principal: PowerUser, resources: ResourcesDep
) -> dict[str, Any]:
    row_id = _id(api_model_id)
    fields = validate_fields(body)
    sealed, hint = (None, None)
    if body.api_key is not None:
        sealed, hint = seal_api_key(resources.settings, validate_api_key(body.api_key), row=str(row_id))
    row = await update_api_model(resources.db, api_model_id=row_id, fields=fields, sealed_key=sealed, key_hint=hint)
    if row is None:
        raise NotFound(f"No API model with id `{api_model_id}`.")
    await resources.routes_changed()
    return public_api_model(row)


@router.delete(f"{BASE}/{{api_model_id}}", status_code=204)
async def api_models_delete(api_model_id: str, principal: PowerUser, resources: ResourcesDep) -> Response:
    if not await delete_api_model(resources.db, _id(api_model_id)):
        raise NotFound(f"No API model with id `{api_model_id}`.")
    await resources.routes_changed()
    return Response(status_code=204)


async def _target_upstream(resources: ResourcesDep, body: ProviderTarget, request_id: str) -> Upstream:
    """The form's URL and key (sealed for this request only), or a stored API model's, the URL overridable."""
    if body.id is not None:
        row = await _existing(resources, body.id)
        base_url = validate_base_url(body.base_url) if body.base_url else row["base_url"]
        return Upstream(base_url=base_url, key_row=str(row["id"]), sealed_key=bytes(row["sealed_key"]))
    if body.base_url is None and body.api_key is None:
        raise InvalidRequest("Send `base_url` and `api_key` for a new API model, or the `id` of a saved one.")
    base_url = validate_base_url(body.base_url)
    row = ephemeral_row(request_id)
    sealed, _ = seal_api_key(resources.settings, validate_api_key(body.api_key), row=row)
    return Upstream(base_url=base_url, key_row=row, sealed_key=sealed)


async def _run_check(
    resources: ResourcesDep, *, function: str, upstream: Upstream, model: str | None, request_id: str
) -> RawResponse:
    job = ProviderCheckJob(
        request_id=request_id,
        channel=resources.hub.channel,
        upstream=upstream,
        model=model,
        pickup_deadline=time.time() + resources.settings.queue_wait_limit,
    )
    reader, answer = await dispatch(
        resources,
        target=QueueTarget.remote(resources.keys),
        function=function,
        payload=job.to_wire(),
        request_id=request_id,
        subject=f"a provider check of {upstream.base_url}",
    )
    resources.hub.close(reader.subscription)
    if answer.kind != EventKind.RESPONSE:
        raise BodhiError("The worker sent an unexpected answer to a provider check.")
    return RawResponse(answer.data, media_type="application/json")


@router.post(f"{BASE}/fetch-models", response_model=None)
async def fetch_models(
    body: ProviderTarget, principal: PowerUser, resources: ResourcesDep, request_id: RequestIdDep
) -> RawResponse:
    upstream = await _target_upstream(resources, body, request_id)
    return await _run_check(
        resources, function=FETCH_MODELS_FUNCTION, upstream=upstream, model=None, request_id=request_id
    )


@router.post(f"{BASE}/test", response_model=None)
async def test_connection(
    body: ProviderTarget, principal: PowerUser, resources: ResourcesDep, request_id: RequestIdDep
) -> RawResponse:
    if not body.model:
        raise InvalidRequest("`model` is required: the model to send the test request to.", param="model")
    upstream = await _target_upstream(resources, body, request_id)
    return await _run_check(
        resources, function=TEST_CONNECTION_FUNCTION, upstream=upstream, model=body.model, request_id=request_id
    )
