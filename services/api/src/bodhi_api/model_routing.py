"""Resolving a requested model name to where it runs: a SQL lookup, never a chain of ifs."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import asyncpg

from bodhi_shared.contract import Upstream
from bodhi_shared.errors import ModelNotFound


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request for ``model`` goes (remote only until local models land)."""

    model: str
    upstream: Upstream


async def resolve_model(db: asyncpg.Pool, name: str) -> Route:
    row = await db.fetchrow("SELECT model, base_url, api_key FROM temporary_upstreams WHERE model = $1", name)
    if row is None:
        raise ModelNotFound(await _not_found_message(db, name), param="model")
    upstream = Upstream(base_url=row["base_url"], api_key=row["api_key"], model=row["model"])
    return Route(model=name, upstream=upstream)


async def known_model_names(db: asyncpg.Pool) -> list[str]:
    return [r["model"] for r in await db.fetch("SELECT model FROM temporary_upstreams ORDER BY model")]


async def _not_found_message(db: asyncpg.Pool, name: str) -> str:
    message = f"The model `{name}` does not exist or you do not have access to it."
    close = difflib.get_close_matches(name, await known_model_names(db), n=1, cutoff=0.6)
    if close:
        return f"{message} Did you mean `{close[0]}`?"
    return f"{message} GET /v1/models lists the models you can use."
