"""Prices of model ids (``bodhi_api.prices``): every user may read them; managers and admins set and delete them."""

from __future__ import annotations

from fastapi import APIRouter, Response

from bodhi_api.auth.principal import AnyUser, Manager
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import NotFound
from bodhi_api.prices import (
    PriceList,
    PricePublic,
    PriceSet,
    check_served,
    delete_price,
    find_price,
    list_prices,
    set_price,
)

router = APIRouter(tags=["prices"])


@router.get("/bodhi/v1/prices")
async def prices_list(principal: AnyUser, resources: ResourcesDep) -> PriceList:
    """Every price set, in US dollars per million tokens; a model id not listed has no price."""
    return PriceList(data=await list_prices(resources.db))


@router.get("/bodhi/v1/prices/{model_id:path}")
async def prices_get(model_id: str, principal: AnyUser, resources: ResourcesDep) -> PricePublic:
    price = await find_price(resources.db, model_id)
    if price is None:
        raise NotFound(f"The model `{model_id}` has no price. Set one with PUT /bodhi/v1/prices/{model_id}.")
    return price


@router.put("/bodhi/v1/prices/{model_id:path}")
async def prices_set(model_id: str, body: PriceSet, actor: Manager, resources: ResourcesDep) -> PricePublic:
    """Set (or replace) the price of a served model id; usage is priced at it from then on, past usage included."""
    await check_served(resources.db, model_id)
    return await set_price(resources.db, model_id=model_id, price=body, by=actor.user.id)


@router.delete("/bodhi/v1/prices/{model_id:path}", status_code=204)
async def prices_delete(model_id: str, actor: Manager, resources: ResourcesDep) -> Response:
    """Remove a price: the model's usage counts as unpriced again."""
    if not await delete_price(resources.db, model_id):
        raise NotFound(f"The model `{model_id}` has no price to delete.")
    return Response(status_code=204)
