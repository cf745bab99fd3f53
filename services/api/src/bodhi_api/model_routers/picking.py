"""The order in which one request tries a router's targets, from state in Redis that every replica shares.

* **Cool-down**: a target whose provider failed (429, 5xx, a timeout, a dropped connection) is left alone for its
  ``Retry-After`` or the router's ``cooldown_s``: a key per target (``RedisKeys.target_cooldown``) that expires
  when the cool-down ends. Keyed by the served id, not the router, so every router that lists it stays off it.
* **Round robin**: a counter per router (``RedisKeys.router_turn``); each request starts one target further on
  among those not cooling down.
* **Least busy**: a sorted set per target of the requests a router sent there (``RedisKeys.target_in_flight``),
  scored by when an entry is given up for lost (its replica died before removing it): ``IN_FLIGHT_LOST_AFTER_S``.
  Requests sent to a target directly, not through a router, are not counted: counting them would cost every
  request a round trip.

One script (``PICK_LUA``) reads all of it and, for ``least_busy``, counts the request in its first choice: one
round trip per request to a router, and none for a request to any other model. The clock is Redis's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from bodhi_api.model_routers.schemas import MAX_COOLDOWN_S, Strategy
from bodhi_shared.redis_keys import RedisKeys

IN_FLIGHT_LOST_AFTER_S = 900
TURN_TTL_S = 86_400

# KEYS: the router's turn counter, then each target's cool-down key, then each target's in-flight set.
# ARGV: strategy, number of targets, request id, ms after which an in-flight entry is lost, the turn counter's
# TTL in seconds.
# Returns {ms until the soonest cool-down ends (-1: none cooling), index of the first target to try, ...}.
PICK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local strategy, n = ARGV[1], tonumber(ARGV[2])
local open, soonest = {}, -1
for i = 1, n do
  local left = redis.call('PTTL', KEYS[1 + i])
  if left > 0 then
    if soonest < 0 or left < soonest then soonest = left end
  else
    open[#open + 1] = i
  end
end
local order = open
if #open > 1 and strategy == 'round_robin' then
  local turn = redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
  local start = (turn - 1) % #open
  order = {}
  for k = 1, #open do order[k] = open[((start + k - 1) % #open) + 1] end
elseif strategy == 'least_busy' and #open > 0 then
  local busy = {}
  for _, i in ipairs(open) do
    local key = KEYS[1 + n + i]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    busy[i] = redis.call('ZCARD', key)
  end
  table.sort(order, function(a, b) if busy[a] == busy[b] then return a < b end return busy[a] < busy[b] end)
  local key = KEYS[1 + n + order[1]]
  redis.call('ZADD', key, now + tonumber(ARGV[4]), ARGV[3])
  redis.call('PEXPIRE', key, tonumber(ARGV[4]))
end
local result = {soonest}
for _, i in ipairs(order) do result[#result + 1] = i end
return result
"""


@dataclass(frozen=True, slots=True)
class RouterSpec:
    """A router as a request needs it (``model_routing.Route.router``)."""

    model_id: str
    strategy: Strategy
    targets: tuple[str, ...]
    cooldown_s: int


@dataclass(frozen=True, slots=True)
class Picked:
    order: list[str]  # the targets not cooling down, in the order to try them
    cooling_ms: int  # until the soonest cool-down ends; -1 when no target is cooling down


async def pick(redis: Redis, keys: RedisKeys, router: RouterSpec, *, request_id: str) -> Picked:
    targets = router.targets
    names = [
        keys.router_turn(router.model_id),
        *(keys.target_cooldown(t) for t in targets),
        *(keys.target_in_flight(t) for t in targets),
    ]
    args = (router.strategy, str(len(targets)), request_id, str(IN_FLIGHT_LOST_AFTER_S * 1000), str(TURN_TTL_S))
    result = await redis.eval(PICK_LUA, len(names), *names, *args)  # type: ignore[misc]  # sync|async union
    return Picked(order=[targets[int(i) - 1] for i in result[1:]], cooling_ms=int(result[0]))


async def cool_down(redis: Redis, keys: RedisKeys, target: str, seconds: float) -> None:
    """Leave ``target`` alone for ``seconds`` (at most an hour), on every replica."""
    ms = min(math.ceil(seconds * 1000), MAX_COOLDOWN_S * 1000)
    if ms > 0:
        await redis.set(keys.target_cooldown(target), b"1", px=ms)


async def move_in_flight(redis: Redis, keys: RedisKeys, *, request_id: str, old: str, new: str) -> None:
    """A ``least_busy`` request that fell back from ``old`` to ``new`` counts at ``new`` now."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.target_in_flight(old), request_id)
        pipe.zadd(keys.target_in_flight(new), {request_id: _lost_at_ms()})
        pipe.expire(keys.target_in_flight(new), IN_FLIGHT_LOST_AFTER_S)
        await pipe.execute()


async def release_in_flight(redis: Redis, keys: RedisKeys, *, request_id: str, target: str) -> None:
    await redis.zrem(keys.target_in_flight(target), request_id)


async def cooling_down(redis: Redis, keys: RedisKeys, targets: list[str]) -> dict[str, float]:
    """The targets cooling down now, with the seconds left."""
    if not targets:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for target in targets:
            pipe.pttl(keys.target_cooldown(target))
        left = await pipe.execute()
    return {t: ms / 1000 for t, ms in zip(targets, left, strict=True) if isinstance(ms, int) and ms > 0}


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """A provider's ``retry-after-ms`` or ``Retry-After`` in seconds (an HTTP date is not honoured: None)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _lost_at_ms() -> float:
    return (time.time() + IN_FLIGHT_LOST_AFTER_S) * 1000
