"""Rate limits and budgets of a user and of each of their tokens: requests and tokens per minute, and tokens per
UTC day or month. ``None`` (NULL in ``users`` and ``api_tokens``) is unlimited. A request must be within both the
user's limits and the token's (``PrincipalLimits``); a browser session has the user's alone.

Like model grants (``auth.grants``), they come with the principal that authentication loads anyway (the token's
row joined with its owner's, cached by ``token_cache.TokenCache``), so knowing them costs no query; enforcing
them is done in Redis, in the script that enqueues (``bodhi_shared.rate_limits``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from bodhi_api.http_errors import TooManyRequests
from bodhi_shared.rate_limits import (
    BUDGET,
    RPM,
    TPM,
    BudgetPeriod,
    LimitCheck,
    LimitExceeded,
    LimitState,
    ms_until,
    period_bounds,
)
from bodhi_shared.redis_keys import RedisKeys

RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
BUDGET_EXCEEDED = "budget_exceeded"
MAX_PER_MINUTE = 1_000_000_000
MAX_BUDGET = 10**15
LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "budget_tokens", "budget_period")

PerMinute = Annotated[int, Field(ge=1, le=MAX_PER_MINUTE)]
BudgetTokens = Annotated[int, Field(ge=1, le=MAX_BUDGET)]


class LimitsBody(BaseModel):
    """Limits as a body carries them; each null (or absent): unlimited. A budget needs its period."""

    rpm_limit: PerMinute | None = Field(default=None, description="Requests per minute; null: unlimited.")
    tpm_limit: PerMinute | None = Field(default=None, description="Tokens (prompt + completion) per minute.")
    budget_tokens: BudgetTokens | None = Field(default=None, description="Tokens per `budget_period`.")
    budget_period: BudgetPeriod | None = Field(default=None, description="`day` or `month`, UTC.")

    @model_validator(mode="after")
    def _budget_has_a_period(self) -> LimitsBody:
        if (self.budget_tokens is None) != (self.budget_period is None):
            raise ValueError("`budget_tokens` and `budget_period` (`day` or `month`) go together.")
        return self

    def limits(self) -> Limits:
        return Limits(self.rpm_limit, self.tpm_limit, self.budget_tokens, self.budget_period)


@dataclass(frozen=True, slots=True)
class Limits:
    """One subject's limits; None in each: unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    budget_tokens: int | None = None
    budget_period: BudgetPeriod | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], prefix: str = "") -> Limits:
        period = row[f"{prefix}budget_period"]
        return cls(
            row[f"{prefix}rpm_limit"],
            row[f"{prefix}tpm_limit"],
            row[f"{prefix}budget_tokens"],
            "day" if period == "day" else "month" if period == "month" else None,
        )

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None and self.budget_tokens is None

    def public(self) -> dict[str, object]:
        return {
            "rpm_limit": self.rpm,
            "tpm_limit": self.tpm,
            "budget_tokens": self.budget_tokens,
            "budget_period": self.budget_period,
        }

    def values(self) -> tuple[int | None, int | None, int | None, str | None]:
        return self.rpm, self.tpm, self.budget_tokens, self.budget_period

    def checks(self, keys: RedisKeys, subject: str, whose: str, now: datetime) -> list[LimitCheck]:
        found: list[LimitCheck] = []
        if self.rpm is not None:
            found.append(LimitCheck(keys.rate_limit(RPM, subject), RPM, self.rpm, whose))
        if self.tpm is not None:
            found.append(LimitCheck(keys.rate_limit(TPM, subject), TPM, self.tpm, whose))
        if self.budget_tokens is not None and self.budget_period is not None:
            tag, end = period_bounds(self.budget_period, now)
            check = LimitCheck(
                keys.budget(subject, tag), BUDGET, self.budget_tokens, whose, ms_until(end, now), self.budget_period
            )
            found.append(check)
        return found


UNLIMITED = Limits()


@dataclass(frozen=True, slots=True)
class PrincipalLimits:
    """What a caller may spend: the user's limits and, for a token, the token's."""

    user_id: uuid.UUID | None = None
    user: Limits = UNLIMITED
    token_id: uuid.UUID | None = None
    token: Limits = UNLIMITED

    @property
    def unlimited(self) -> bool:
        return self.user.unlimited and self.token.unlimited

    def checks(self, keys: RedisKeys, now: datetime) -> list[LimitCheck]:
        """The Redis checks of this caller's limits at ``now``: none (and no cost) when unlimited."""
        if self.unlimited:
            return []
        found: list[LimitCheck] = []
        if self.token_id is not None:
            found += self.token.checks(keys, f"token:{self.token_id}", "this API token", now)
        if self.user_id is not None:
            found += self.user.checks(keys, f"user:{self.user_id}", "your account", now)
        return found


NO_LIMITS = PrincipalLimits()


def duration(ms: int) -> str:
    """A reset time as OpenAI writes it in ``x-ratelimit-reset-*``: ``250ms``, ``1.5s``, ``1m30s``."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def state_headers(states: list[LimitState]) -> dict[str, str]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` of the tightest rpm and tpm limits."""
    headers: dict[str, str] = {}
    for kind, name in ((RPM, "requests"), (TPM, "tokens")):
        of_kind = [s for s in states if s.check.kind == kind]
        if of_kind:
            tightest = min(of_kind, key=lambda s: (s.remaining, -s.reset_ms))
            headers[f"x-ratelimit-limit-{name}"] = str(tightest.check.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(tightest.remaining)
            headers[f"x-ratelimit-reset-{name}"] = duration(tightest.reset_ms)
    return headers


class RateLimited(TooManyRequests):
    """A token's or a user's requests or tokens per minute are spent (``auth.limits``)."""

    code = RATE_LIMIT_EXCEEDED


class BudgetExceeded(TooManyRequests):
    """A token's or a user's budget of tokens for the day or month is spent (``auth.limits``)."""

    code = BUDGET_EXCEEDED


def limit_error(exceeded: LimitExceeded) -> TooManyRequests:
    """The 429 for a limit reached, saying whose and which, and when it resets."""
    check = exceeded.check
    retry_s = max(1, math.ceil(exceeded.retry_after_ms / 1000))
    error: TooManyRequests
    if check.kind == BUDGET:
        error = BudgetExceeded(
            f"The token budget of {check.whose} ({check.limit} tokens per {check.period}, UTC) is spent; it "
            f"resets in {duration(exceeded.retry_after_ms)}, at the start of the next {check.period}.",
            retry_after_s=retry_s,
        )
        return error
    what, name = (
        ("requests per minute (RPM)", "requests") if check.kind == RPM else ("tokens per minute (TPM)", "tokens")
    )
    error = RateLimited(
        f"Rate limit of {check.whose} reached: {check.limit} {what}. Retry in {duration(exceeded.retry_after_ms)}; "
        f"it resets fully in {duration(exceeded.reset_ms)}.",
        retry_after_s=retry_s,
    )
    error.headers |= {
        "retry-after-ms": str(max(0, exceeded.retry_after_ms)),
        f"x-ratelimit-limit-{name}": str(check.limit),
        f"x-ratelimit-remaining-{name}": "0",
        f"x-ratelimit-reset-{name}": duration(exceeded.reset_ms),
    }
    return error
