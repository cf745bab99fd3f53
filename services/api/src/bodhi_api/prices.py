"""Prices of model ids (``model_prices``), in US dollars per million input and output tokens, and usage in money.

A price is optional and keyed by a served id (an API model's model or a local alias; a router's requests are
priced at the target that answered them, so a router has no price of its own). Usage is priced when it is read,
in SQL: ``COST`` over ``PRICED`` (each usage record ``u`` joined with the price ``p`` of its model by
``PRICE_JOIN``); a record of a model without a price counts as unpriced (``UNPRICED_REQUESTS``,
``UNPRICED_TOKENS``) rather than free.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import asyncpg
from pydantic import BaseModel, Field

from bodhi_api.http_errors import NotFound
from bodhi_api.model_routing import closest_served_id
from bodhi_shared.errors import InvalidRequest

CURRENCY = "USD"
MAX_PRICE = 1_000_000  # dollars per million tokens: far above any provider's, well within NUMERIC(16, 6)

# The price ``p`` of the model that answered each usage record ``u`` (a router's target, else the model asked for);
# NULL columns where it has none.
PRICE_JOIN = "LEFT JOIN model_prices p ON p.model_id = coalesce(u.target, u.model)"
PRICED = f"usage_records u {PRICE_JOIN}"
# Aggregates over PRICED. COST is NULL when no record of the group has a price (sum() skips NULL terms).
# Exact: prices have 6 decimal places, so a million-th of a sum of them has 12.
COST = (
    "sum(coalesce(u.prompt_tokens, 0) * p.input_per_million"
    " + coalesce(u.completion_tokens, 0) * p.output_per_million) / 1000000"
)
UNPRICED_REQUESTS = "count(*) FILTER (WHERE p.model_id IS NULL)"
UNPRICED_TOKENS = "coalesce(sum(u.total_tokens) FILTER (WHERE p.model_id IS NULL), 0)"

PricePerMillion = Annotated[
    Decimal,
    Field(
        ge=0,
        le=MAX_PRICE,
        decimal_places=6,
        allow_inf_nan=False,
        description=f"US dollars per million tokens, 0 to {MAX_PRICE:,}, at most 6 decimal places.",
    ),
]


class PriceSet(BaseModel):
    """A model id's price: both halves (0 for free)."""

    input_per_million: PricePerMillion = Field(description="US dollars per million input (prompt) tokens.")
    output_per_million: PricePerMillion = Field(description="US dollars per million output (completion) tokens.")


class PricePublic(BaseModel):
    model_id: str
    input_per_million: float = Field(description="US dollars per million input (prompt) tokens.")
    output_per_million: float = Field(description="US dollars per million output (completion) tokens.")
    currency: str = Field(default=CURRENCY, description="Always `USD`.")
    updated_at: datetime


class PriceList(BaseModel):
    currency: str = Field(default=CURRENCY, description="Always `USD`.")
    data: list[PricePublic]


@dataclass(frozen=True, slots=True)
class Cost:
    """Usage in money: ``cost`` of the priced records (None: none was priced) and what no price covered."""

    cost: float | None
    unpriced_requests: int
    unpriced_tokens: int

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Cost:
        """From a row with the columns ``cost``, ``unpriced_requests`` and ``unpriced_tokens``."""
        cost = row["cost"]
        return cls(None if cost is None else float(cost), row["unpriced_requests"], row["unpriced_tokens"])

    def public(self) -> dict[str, object]:
        return {"cost": self.cost, "unpriced_requests": self.unpriced_requests, "unpriced_tokens": self.unpriced_tokens}


_COLUMNS = "model_id, input_per_million, output_per_million, updated_at"


def public_price(row: asyncpg.Record) -> PricePublic:
    return PricePublic(
        model_id=row["model_id"],
        input_per_million=float(row["input_per_million"]),
        output_per_million=float(row["output_per_million"]),
        updated_at=row["updated_at"],
    )


async def list_prices(db: asyncpg.Pool) -> list[PricePublic]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM model_prices ORDER BY model_id")  # noqa: S608 -- constant columns
    return [public_price(r) for r in rows]


async def find_price(db: asyncpg.Pool, model_id: str) -> PricePublic | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM model_prices WHERE model_id = $1", model_id)  # noqa: S608
    return public_price(row) if row is not None else None


async def check_served(db: asyncpg.Pool, model_id: str) -> None:
    """404 ``model_not_found`` unless ``model_id`` is served now (a price for a typo would price nothing); 400 for a
    router (its requests are priced at their targets)."""
    row = await db.fetchrow("SELECT router FROM served_models WHERE model_id = $1", model_id)
    if row is None:
        close = await closest_served_id(db, model_id)
        hint = f" Did you mean `{close}`?" if close else " `GET /v1/models` lists the served ids."
        raise NotFound(f"No model `{model_id}` is served, so it cannot be priced.{hint}", code="model_not_found")
    if row["router"] is not None:
        raise InvalidRequest(
            f"`{model_id}` is a router: its requests are priced at the target that answered them. Price its "
            "targets instead.",
            param="model_id",
        )


async def set_price(db: asyncpg.Pool, *, model_id: str, price: PriceSet, by: uuid.UUID) -> PricePublic:
    row = await db.fetchrow(
        "INSERT INTO model_prices (model_id, input_per_million, output_per_million, updated_by)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (model_id) DO UPDATE SET input_per_million = EXCLUDED.input_per_million,"
        " output_per_million = EXCLUDED.output_per_million, updated_by = EXCLUDED.updated_by, updated_at = now()"
        " RETURNING model_id, input_per_million, output_per_million, updated_at",
        model_id,
        price.input_per_million,
        price.output_per_million,
        by,
    )
    assert row is not None
    return public_price(row)


async def delete_price(db: asyncpg.Pool, model_id: str) -> bool:
    result: str = await db.execute("DELETE FROM model_prices WHERE model_id = $1", model_id)
    return result.endswith(" 1")
