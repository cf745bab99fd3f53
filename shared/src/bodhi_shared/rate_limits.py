"""Rate limits and token budgets in Redis, shared by every API replica.

Each limit is one ``LimitCheck``: a Redis key and what it holds.

* ``rpm`` and ``tpm``: GCRA (the generic cell rate algorithm). The key holds the theoretical arrival time (unix
  ms): each request (``rpm``) or each token (``tpm``) moves it ``60000 / limit`` ms on from ``max(it, now)``; a
  request is admitted while it stays within one minute of now, so a full minute's allowance may be used at once
  and then refills evenly. One key per subject, one ``GET`` and (for ``rpm``) one ``PSETEX``.
* ``budget``: the tokens charged in the current UTC day or month (``INCRBY``), one key per period, expiring
  after it; a request is admitted while the count is under the budget.

The checks run inside the script that enqueues the job (``queue.enqueue_if_capacity``): one round trip for all
of it, and a refused request writes nothing. Tokens are known only when a request ends, so ``tpm`` and
``budget`` are charged then (``charge``, off the request path); the next request sees them. The clock is
Redis's own (``TIME``), the same for every replica.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from redis.asyncio import Redis

WINDOW_MS = 60_000
LimitKind = Literal["rpm", "tpm", "budget"]
RPM: Literal["rpm"] = "rpm"
TPM: Literal["tpm"] = "tpm"
BUDGET: Literal["budget"] = "budget"
BudgetPeriod = Literal["day", "month"]
BUDGET_MARGIN_MS = 60_000  # a period's key outlives its period by this much (clock skew between replicas)

# Lua: read-only checks of KEYS[first..#KEYS] against ARGV triples (kind, limit, ms until the period ends) from
# ARGV[argv0 + 1]. Sets `blocked` to {3, index, retry-after ms, 0, reset ms}, or fills `states` (remaining, reset
# ms for each) and `writes` (the rpm keys' new arrival times). `now` is Redis's clock in ms.
CHECK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local blocked = nil
local states = {}
local writes = {}
for i = first, #KEYS do
  local a = argv0 + 3 * (i - first)
  local kind, limit, period = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local held = tonumber(redis.call('GET', KEYS[i]) or '0')
  local index = i - first + 1
  if kind == 'budget' then
    if held >= limit then blocked = {3, index, period, 0, period} break end
    states[#states + 1] = limit - held
    states[#states + 1] = period
  else
    local step = 60000 / limit
    local tat = math.max(held, now)
    if kind == 'rpm' then
      local new = tat + step
      if new - now > 60000 then blocked = {3, index, math.ceil(new - now - 60000), 0, math.ceil(tat - now)} break end
      writes[#writes + 1] = {KEYS[i], new}
      states[#states + 1] = math.floor((60000 - (new - now)) / step)
      states[#states + 1] = math.ceil(new - now)
    else
      if tat - now > 60000 - step then
        blocked = {3, index, math.ceil(tat - now - 60000 + step), 0, math.ceil(tat - now)} break
      end
      states[#states + 1] = math.floor((60000 - (tat - now)) / step)
      states[#states + 1] = math.ceil(tat - now)
    end
  end
end
"""

# Lua: the rpm keys' new arrival times, once the request is admitted (after CHECK_LUA and the capacity checks).
COMMIT_LUA = """
for _, w in ipairs(writes) do
  redis.call('PSETEX', w[1], math.ceil(w[2] - now) + 1000, string.format('%.3f', w[2]))
end
"""

# Charges tokens to each key: ARGV triples (kind, n, tokens); tpm: n is the limit, budget: n is the key's time to
# live in ms.
_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local kind, n, tokens = ARGV[3 * i - 2], tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  if kind == 'budget' then
    redis.call('INCRBY', KEYS[i], tokens)
    redis.call('PEXPIRE', KEYS[i], n)
  else
    local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now) + tokens * 60000 / n
    redis.call('PSETEX', KEYS[i], math.ceil(tat - now) + 1000, string.format('%.3f', tat))
  end
end
return 0
"""


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One limit of one subject: its key, kind and limit; ``whose`` names the subject in messages."""

    key: str
    kind: LimitKind
    limit: int
    whose: str
    period_ms: int = WINDOW_MS  # a budget: ms until its period ends
    period: BudgetPeriod | None = None

    def args(self) -> list[Any]:
        return [self.kind, self.limit, self.period_ms]


@dataclass(frozen=True, slots=True)
class LimitState:
    """What is left of one limit after an admitted request, and in how many ms it is whole again."""

    check: LimitCheck
    remaining: int
    reset_ms: int


class LimitExceeded(Exception):
    def __init__(self, check: LimitCheck, *, retry_after_ms: int, reset_ms: int) -> None:
        super().__init__(f"{check.kind} limit {check.limit} of {check.whose}")
        self.check, self.retry_after_ms, self.reset_ms = check, retry_after_ms, reset_ms


def parse_result(checks: Sequence[LimitCheck], result: Sequence[Any]) -> list[LimitState]:
    """The states after an admitted request from the script's answer past its first two values; raises
    ``LimitExceeded`` for a ``{3, index, retry, 0, reset}`` answer."""
    if int(result[0]) == 3:
        check = checks[int(result[1]) - 1]
        raise LimitExceeded(check, retry_after_ms=int(result[2]), reset_ms=int(result[4]))
    rest = [int(v) for v in result[2:]]
    return [
        LimitState(check, remaining=max(0, rest[2 * i]), reset_ms=rest[2 * i + 1]) for i, check in enumerate(checks)
    ]


def period_start(period: BudgetPeriod, now: datetime) -> datetime:
    """When the UTC day or month holding ``now`` began."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_bounds(period: BudgetPeriod, now: datetime) -> tuple[str, datetime]:
    """The tag of the UTC day or month holding ``now`` (``2026-12-01``, ``2026-12``) and when it ends."""
    start = period_start(period, now)
    if period == "day":
        return start.strftime("%Y-%m-%d"), start + timedelta(days=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start.strftime("%Y-%m"), end


def ms_until(end: datetime, now: datetime) -> int:
    return max(1, math.ceil((end - now).total_seconds() * 1000))


def _charged(checks: Sequence[LimitCheck]) -> list[tuple[str, LimitKind, int]]:
    """(key, kind, n) of the ``tpm`` and ``budget`` limits among ``checks``: what a finished request is charged."""
    return [
        (c.key, c.kind, c.limit if c.kind == TPM else c.period_ms + BUDGET_MARGIN_MS) for c in checks if c.kind != RPM
    ]


async def _charge(redis: Redis, charges: dict[str, tuple[LimitKind, int, int]]) -> None:
    args = [str(a) for kind, n, tokens in charges.values() for a in (kind, n, tokens)]
    await redis.eval(_CHARGE, len(charges), *charges, *args)  # type: ignore[misc]  # sync|async union


class Charges:
    """The tokens finished requests used, summed per limit key and charged together ``FLUSH_S`` after the first
    (``spawn`` runs that off the request path): one round trip per interval, not one per request, which on a busy
    replica was a twentieth of its CPU per request. A charge lands at most ``FLUSH_S`` later; as before, only the
    requests after it can see it. What Redis refused (an outage) waits for the next charge's flush."""

    FLUSH_S = 0.05

    def __init__(self, redis: Redis, spawn: Callable[[Coroutine[Any, Any, Any]], object]) -> None:
        self._redis, self._spawn = redis, spawn
        self._pending: dict[str, tuple[LimitKind, int, int]] = {}
        self._scheduled = False

    def add(self, checks: Sequence[LimitCheck], tokens: int) -> None:
        if tokens <= 0 or not (charged := _charged(checks)):
            return
        self._merge({key: (kind, n, tokens) for key, kind, n in charged})
        if not self._scheduled:
            self._scheduled = True
            self._spawn(self._flush_later())

    def _merge(self, charges: dict[str, tuple[LimitKind, int, int]]) -> None:
        for key, (kind, n, tokens) in charges.items():
            held = self._pending.get(key)
            self._pending[key] = (kind, n, tokens + (held[2] if held else 0))

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.FLUSH_S)
        self._scheduled = False
        await self.flush()

    async def flush(self) -> None:
        """Charge what is pending now."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            await _charge(self._redis, pending)
        except BaseException:
            self._merge(pending)
            raise
