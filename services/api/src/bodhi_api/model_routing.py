"""Resolving a requested model name to where it runs: one primary-key lookup in ``served_models``.

A local alias named ``M``, an API model serving ``M`` and a router named ``M`` cannot coexist (the uniqueness
rule), so the lookup needs no precedence: the row says which it is. A router's route names its targets, each
resolved in turn when the request is routed (``model_routers.routed_dispatch``).
"""

from __future__ import annotations

import difflib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bodhi_api.model_routers.picking import RouterSpec
from bodhi_shared.contract import LocalModel, Upstream
from bodhi_shared.errors import ModelNotFound


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request for ``model`` goes: an API model's provider (``upstream``), a local alias (``local``) or a
    router's targets (``router``)."""

    model: str
    upstream_model: str
    api_model_id: uuid.UUID | None = None
    upstream: Upstream | None = None
    local: LocalModel | None = None
    request_params: dict[str, Any] = field(default_factory=dict)
    router: RouterSpec | None = None


class RouteCache:
    """Resolved routes for ``TTL_S``; cleared on every replica whenever an API model or alias changes
    (``Resources.routes_changed``), so the TTL only bounds the effect of a lost message."""

    TTL_S = 2.0
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Route]] = {}

    def get(self, name: str) -> Route | None:
        entry = self._entries.get(name)
        if entry is None or time.monotonic() >= entry[0]:
            return None
        return entry[1]

    def put(self, name: str, route: Route) -> None:
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[name] = (time.monotonic() + self.TTL_S, route)

    def clear(self) -> None:
        self._entries.clear()


async def resolve_model(db: asyncpg.Pool, name: str, *, cache: RouteCache | None = None) -> Route:
    if cache is not None and (cached := cache.get(name)) is not None:
        return cached
    route = await _lookup(db, name)
    if cache is not None:
        cache.put(name, route)
    return route


async def _lookup(db: asyncpg.Pool, name: str) -> Route:
    row = await db.fetchrow(
        "SELECT s.upstream_model, a.id, a.name, a.base_url, a.sealed_key, a.api_format, a.extra_headers, l.alias,"
        " l.path, l.context_params, l.request_params, r.model_id AS router, r.strategy, r.targets, r.cooldown_s"
        " FROM served_models s LEFT JOIN api_models a ON a.id = s.api_model_id"
        " LEFT JOIN local_aliases l ON l.alias = s.alias LEFT JOIN routers r ON r.model_id = s.router"
        " WHERE s.model_id = $1",
        name,
    )
    if row is None:
        raise ModelNotFound(await _not_found_message(db, name), param="model")
    if row["router"] is not None:
        targets, cooldown_s = tuple(row["targets"]), row["cooldown_s"]
        router = RouterSpec(model_id=row["router"], strategy=row["strategy"], targets=targets, cooldown_s=cooldown_s)
        return Route(model=name, upstream_model=name, router=router)
    if row["alias"] is not None:
        local = LocalModel(alias=row["alias"], path=row["path"], context_params=row["context_params"])
        return Route(model=name, upstream_model=name, local=local, request_params=row["request_params"])
    upstream = Upstream(
        base_url=row["base_url"],
        key_row=str(row["id"]),
        sealed_key=bytes(row["sealed_key"]),
        api_model_name=row["name"],
        api_format=row["api_format"],
        extra_headers=dict(row["extra_headers"]),
    )
    return Route(model=name, upstream_model=row["upstream_model"], api_model_id=row["id"], upstream=upstream)


async def _not_found_message(db: asyncpg.Pool, name: str) -> str:
    message = f"The model `{name}` does not exist or you do not have access to it."
    if close := await closest_served_id(db, name):
        return f"{message} Did you mean `{close}`?"
    return f"{message} GET /v1/models lists the models you can use."


async def closest_served_id(db: asyncpg.Pool, name: str) -> str | None:
    """The served id a mistyped ``name`` most likely meant (``_closest``), for a "Did you mean" hint; None when
    none is close."""
    served = await db.fetch(
        "SELECT s.model_id, a.prefix FROM served_models s LEFT JOIN api_models a ON a.id = s.api_model_id"
    )
    close = _closest(name, served)
    return close[0] if close else None


def _closest(name: str, served: list[asyncpg.Record]) -> list[str]:
    """The served id most like ``name``, preferring the API model whose prefix ``name`` asks for: a typo in
    ``openai/gpt-4o`` should not be answered with another provider's ``gpt-4o``."""
    ids = sorted((r["model_id"] for r in served), key=str.lower)
    asked = [r["model_id"] for r in served if r["prefix"] and name.startswith(r["prefix"])]
    if asked and (close := difflib.get_close_matches(name, sorted(asked, key=str.lower), n=1, cutoff=0.6)):
        return close
    return difflib.get_close_matches(name, ids, n=1, cutoff=0.6)
