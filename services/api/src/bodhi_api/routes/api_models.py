"""``/bodhi/v1/models/api``: API models.

Every user may list and use them (the team shares them), without keys. A power_user may create them, and edit,
delete, or test and fetch models with the stored key only of those they created; managers and admins of all.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
from fastapi import APIRouter, Response
from starlette.responses import Response as RawResponse

from bodhi_api.api_models.schemas import (
    API_FORMATS,
    ApiFormatList,
    ApiModelCreate,
    ApiModelFields,
    ApiModelList,
    ApiModelPatch,
    ApiModelPublic,
    ApiModelUpdate,
    ConnectionTest,
    FetchedModels,
    ProviderTarget,
    check_upstream_host,
)
from bodhi_api.api_models.sealing import ephemeral_row, seal_api_key
from bodhi_api.api_models.store import (
    KEY_FOR_NEW_URL,
    create_api_model,
    delete_api_model,
    get_api_model,
    list_api_models,
    update_api_model,
)
from bodhi_api.auth.principal import AnyUser, PowerUser, Principal
from bodhi_api.auth.roles import Role
from bodhi_api.deps import RequestIdDep, ResourcesDep
from bodhi_api.dispatch import QueueTarget, dispatch
from bodhi_api.http_errors import NotFound, PermissionDenied
from bodhi_api.resources import Resources
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


def may_manage(principal: Principal, row: asyncpg.Record) -> bool:
    """Whether ``principal`` may edit or delete ``row``, or send its stored key anywhere (a test, a fetch)."""
    return principal.user.role.at_least(Role.MANAGER) or row["created_by"] == principal.user.id


def public_api_model(row: asyncpg.Record, principal: Principal) -> ApiModelPublic:
    return ApiModelPublic(
        id=str(row["id"]),
        name=row["name"],
        api_format=row["api_format"],
        base_url=row["base_url"],
        prefix=row["prefix"],
        models=list(row["models"]),
        extra_headers=dict(row["extra_headers"]),
        has_api_key=bool(row["key_hint"]),  # a keyless API model has the empty key sealed, and no hint
        api_key_hint=row["key_hint"],
        created_by=str(row["created_by"]) if row["created_by"] else None,
        editable=principal.user.role.at_least(Role.POWER_USER) and may_manage(principal, row),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"No API model with id `{raw}`.") from None


async def _existing(resources: Resources, raw_id: str) -> asyncpg.Record:
    row = await get_api_model(resources.db, _id(raw_id))
    if row is None:
        raise NotFound(f"No API model with id `{raw_id}`.")
    return row


async def _managed(resources: Resources, principal: Principal, raw_id: str, *, action: str) -> asyncpg.Record:
    """The row, if ``principal`` may ``action`` it: 403 for another's model (the row is public, so no 404)."""
    row = await _existing(resources, raw_id)
    if not may_manage(principal, row):
        raise PermissionDenied(
            f"You may {action} only the API models you created; `{row['name']}` was created by another user. "
            "Ask a manager or an admin.",
            code="not_owner",
        )
    return row


@router.get(BASE)
async def api_models_list(principal: AnyUser, resources: ResourcesDep) -> ApiModelList:
    return ApiModelList(data=[public_api_model(r, principal) for r in await list_api_models(resources.db)])


@router.get(f"{BASE}/formats")
async def api_formats(principal: AnyUser) -> ApiFormatList:
    return ApiFormatList(data=list(API_FORMATS))


@router.post(BASE, status_code=201)
async def api_models_create(body: ApiModelCreate, principal: PowerUser, resources: ResourcesDep) -> ApiModelPublic:
    check_upstream_host(body.base_url, allow_private=resources.settings.allow_private_upstreams)
    api_model_id = uuid.uuid4()
    api_key = body.api_key or ""  # none: a keyless provider (a local server), which gets no key header
    sealed, hint = await seal_api_key(resources.settings, api_key, row=str(api_model_id), base_url=body.base_url)
    row = await create_api_model(
        resources.db,
        api_model_id=api_model_id,
        fields=body,
        sealed_key=sealed,
        key_hint=hint,
        created_by=principal.user.id,
    )
    await resources.routes_changed()
    return public_api_model(row, principal)


@router.get(f"{BASE}/{{api_model_id}}")
async def api_models_get(api_model_id: str, principal: AnyUser, resources: ResourcesDep) -> ApiModelPublic:
    return public_api_model(await _existing(resources, api_model_id), principal)


async def _save(
    resources: Resources, principal: Principal, row: asyncpg.Record, *, fields: ApiModelFields, api_key: str | None
) -> ApiModelPublic:
    check_upstream_host(fields.base_url, allow_private=resources.settings.allow_private_upstreams)
    sealed, hint = (None, None)
    if api_key:
        sealed, hint = await seal_api_key(resources.settings, api_key, row=str(row["id"]), base_url=fields.base_url)
    elif is_keyless(row) and fields.base_url != row["base_url"]:
        # No key to enter again for the new URL: the empty one is sealed for it.
        sealed, hint = await seal_api_key(resources.settings, "", row=str(row["id"]), base_url=fields.base_url)
    saved = await update_api_model(
        resources.db, api_model_id=row["id"], fields=fields, sealed_key=sealed, key_hint=hint
    )
    if saved is None:
        raise NotFound(f"No API model with id `{row['id']}`.")
    await resources.routes_changed()
    return public_api_model(saved, principal)


@router.put(f"{BASE}/{{api_model_id}}")
async def api_models_update(
    api_model_id: str, body: ApiModelUpdate, principal: PowerUser, resources: ResourcesDep
) -> ApiModelPublic:
    row = await _managed(resources, principal, api_model_id, action="edit")
    return await _save(resources, principal, row, fields=body, api_key=body.new_key())


@router.patch(f"{BASE}/{{api_model_id}}")
async def api_models_patch(
    api_model_id: str, body: ApiModelPatch, principal: PowerUser, resources: ResourcesDep
) -> ApiModelPublic:
    row = await _managed(resources, principal, api_model_id, action="edit")
    stored = {key: row[key] for key in ("name", "api_format", "base_url", "prefix")} | {
        "models": list(row["models"]),
        "extra_headers": dict(row["extra_headers"]),
    }
    changes = body.model_dump(exclude_unset=True)
    api_key = changes.pop("api_key", None) or None
    # Re-validated whole: a change must leave a valid API model. A null means "unchanged", except for the prefix.
    changed = {key: value for key, value in changes.items() if value is not None or key == "prefix"}
    fields = ApiModelFields.model_validate(stored | changed)
    return await _save(resources, principal, row, fields=fields, api_key=api_key)


@router.delete(f"{BASE}/{{api_model_id}}", status_code=204)
async def api_models_delete(api_model_id: str, principal: PowerUser, resources: ResourcesDep) -> Response:
    row = await _managed(resources, principal, api_model_id, action="delete")
    if not await delete_api_model(resources.db, row["id"]):
        raise NotFound(f"No API model with id `{api_model_id}`.")
    await resources.routes_changed()
    return Response(status_code=204)


async def _target_upstream(
    resources: Resources, principal: Principal, body: ProviderTarget, request_id: str
) -> Upstream:
    """Where a check goes and with which key: a typed key is always the one used (sealed for this request only,
    and for the URL it goes to); the stored key only for its own URL, and only for those who may manage it. No key
    at all is a keyless check. The form's format and headers, when sent, win over the stored ones."""
    if body.id is None:
        if body.base_url is None:
            raise InvalidRequest(
                "Send `base_url` (and `api_key`, unless the provider needs none) for a new API model, or the `id` "
                "of a saved one.",
                param="base_url",
            )
        return await _form_upstream(
            resources, body, base_url=body.base_url, api_key=body.api_key or "", request_id=request_id
        )
    if body.api_key:
        row = await _existing(resources, body.id)
        base_url = body.base_url or row["base_url"]
        return await _form_upstream(
            resources, body, row, base_url=base_url, api_key=body.api_key, request_id=request_id
        )
    row = await _managed(resources, principal, body.id, action="test or fetch models with the key of")
    if body.base_url is not None and body.base_url != row["base_url"]:
        if not is_keyless(row):
            raise InvalidRequest(KEY_FOR_NEW_URL.format(url=body.base_url), param="api_key")
        return await _form_upstream(resources, body, row, base_url=body.base_url, api_key="", request_id=request_id)
    check_upstream_host(row["base_url"], allow_private=resources.settings.allow_private_upstreams)
    return Upstream(
        base_url=row["base_url"],
        key_row=str(row["id"]),
        sealed_key=bytes(row["sealed_key"]),
        api_model_name=row["name"],
        **_format_of(body, row),
    )


def is_keyless(row: asyncpg.Record) -> bool:
    """Whether the API model's provider needs no key (its sealed key is the empty string, its hint empty)."""
    return not row["key_hint"]


def _format_of(body: ProviderTarget, row: asyncpg.Record | None) -> dict[str, Any]:
    """The ``api_format`` and ``extra_headers`` of a check: the form's, else the saved model's, else the defaults."""
    stored_format, stored_headers = (
        (row["api_format"], dict(row["extra_headers"])) if row is not None else ("openai", {})
    )
    return {
        "api_format": body.api_format or stored_format,
        "extra_headers": body.extra_headers if body.extra_headers is not None else stored_headers,
    }


async def _form_upstream(
    resources: Resources,
    body: ProviderTarget,
    row: asyncpg.Record | None = None,
    *,
    base_url: str,
    api_key: str,
    request_id: str,
) -> Upstream:
    check_upstream_host(base_url, allow_private=resources.settings.allow_private_upstreams)
    key_row = ephemeral_row(request_id)
    sealed, _ = await seal_api_key(resources.settings, api_key, row=key_row, base_url=base_url)
    return Upstream(base_url=base_url, key_row=key_row, sealed_key=sealed, **_format_of(body, row))


async def _run_check(
    resources: Resources, *, function: str, upstream: Upstream, model: str | None, request_id: str
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


_CHECK_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"description": "The provider's answer"}}


@router.post(f"{BASE}/fetch-models", response_model=FetchedModels, responses=_CHECK_RESPONSES)
async def fetch_models(
    body: ProviderTarget, principal: PowerUser, resources: ResourcesDep, request_id: RequestIdDep
) -> RawResponse:
    upstream = await _target_upstream(resources, principal, body, request_id)
    return await _run_check(
        resources, function=FETCH_MODELS_FUNCTION, upstream=upstream, model=None, request_id=request_id
    )


@router.post(f"{BASE}/test", response_model=ConnectionTest, responses=_CHECK_RESPONSES)
async def test_connection(
    body: ProviderTarget, principal: PowerUser, resources: ResourcesDep, request_id: RequestIdDep
) -> RawResponse:
    if not body.model:
        raise InvalidRequest("`model` is required: the model to send the test request to.", param="model")
    upstream = await _target_upstream(resources, principal, body, request_id)
    return await _run_check(
        resources, function=TEST_CONNECTION_FUNCTION, upstream=upstream, model=body.model, request_id=request_id
    )
