"""What clients send and get back for routers: pydantic models that carry the rules the docs promise."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bodhi_api.local_aliases.schemas import ALIAS_PATTERN
from bodhi_shared.clean_text import CleanLine

Strategy = Literal["fallback", "round_robin", "least_busy"]
MAX_TARGETS = 16
MAX_COOLDOWN_S = 3600
DEFAULT_COOLDOWN_S = 30

RouterId = Annotated[
    str,
    Field(
        pattern=ALIAS_PATTERN,
        description="The model id clients ask for: 1 to 128 letters, digits or `- _ . / :`, starting with a letter "
        "or digit, unique among every served id (API models' models, local aliases, routers).",
        examples=["team/gpt"],
    ),
]


def _distinct(targets: list[str]) -> list[str]:
    seen: set[str] = set()
    for target in targets:
        if target in seen:
            raise ValueError(f"`{target}` is listed twice; list each target once")
        seen.add(target)
    return targets


Targets = Annotated[
    list[Annotated[CleanLine, Field(min_length=1, max_length=512)]],
    Field(
        min_length=1,
        max_length=MAX_TARGETS,
        description="Served model ids (API models' models or local aliases, not routers), in the order a "
        "`fallback` router tries them.",
        examples=[["openai/gpt-4o-mini", "openrouter/openai/gpt-4o-mini"]],
    ),
    AfterValidator(_distinct),
]
StrategyField = Annotated[
    Strategy,
    Field(
        description="`fallback`: the first target that is not cooling down, the next on 429, 5xx, a timeout or a "
        "connection error before the first byte; `round_robin`: each request starts at the next target; "
        "`least_busy`: the target with the fewest requests in flight. All move on to the next target on failure.",
    ),
]
Cooldown = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_COOLDOWN_S,
        description="Seconds a target that failed is left alone when its provider named no Retry-After (0: never "
        "cooled down). A provider's Retry-After wins, up to an hour.",
    ),
]


class RouterUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: StrategyField = "fallback"
    targets: Targets
    cooldown_s: Cooldown = DEFAULT_COOLDOWN_S


class RouterCreate(RouterUpdate):
    model_id: RouterId


class RouterPublic(BaseModel):
    model_id: str
    strategy: Strategy
    targets: list[str]
    cooldown_s: int
    cooling_down: dict[str, float] = Field(
        default_factory=dict, description="Targets cooling down now, with the seconds left (shared by every replica)."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record, cooling_down: dict[str, float] | None = None) -> RouterPublic:
        return cls(
            model_id=row["model_id"],
            strategy=row["strategy"],
            targets=list(row["targets"]),
            cooldown_s=row["cooldown_s"],
            cooling_down=cooling_down or {},
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


class RouterList(BaseModel):
    data: list[RouterPublic]
