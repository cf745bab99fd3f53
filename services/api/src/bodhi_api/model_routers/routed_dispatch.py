"""Serving a request for a router: its targets tried in the order ``picking.pick`` gives, until one answers.

A target is left for the next one when it fails before the first byte of its answer reached the client:

* its provider answered 429 or 5xx, timed out or dropped the connection (a ``RelayedError`` of those statuses):
  the target is also cooled down for its ``Retry-After``, or the router's ``cooldown_s``, on every replica;
* the gateway could not get it to a worker (no worker serves it, its queue is full, its worker died): no
  cool-down, since the target itself did not fail.

Anything else is the answer: a 400, 401, 404 or 422 from the provider (the next target would say the same, and a
retry would hide the mistake), the provider refusing its stored key (an admin must fix it), and the caller's own
rate limits and budgets, which are checked once, with the first target's enqueue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from bodhi_api.auth.limits import BudgetExceeded, RateLimited
from bodhi_api.dispatch import NoWorkerAvailable
from bodhi_api.event_reader import EventReader, WorkerLost
from bodhi_api.http_errors import TooManyRequests
from bodhi_api.model_routers.picking import (
    RouterSpec,
    cool_down,
    move_in_flight,
    pick,
    release_in_flight,
    retry_after_s,
)
from bodhi_api.model_routing import Route, resolve_model
from bodhi_api.resources import Resources
from bodhi_shared.contract import StreamEvent
from bodhi_shared.errors import BodhiError, ModelNotFound, RelayedError, ServiceUnavailable
from bodhi_shared.rate_limits import LimitCheck, LimitState

log = logging.getLogger(__name__)

# The job of one target: its route, the job's own id (each attempt gets one, so a late cancel of the last attempt
# cannot reach the next) and the limits to check as it is enqueued.
Attempt = Callable[[Route, str, Sequence[LimitCheck]], Awaitable[tuple[EventReader, StreamEvent]]]
# Provider answers that do not move a request on: the next target would refuse it as well.
NOT_RETRIED_CODES = frozenset({"provider_authentication_failed"})


class RouterCoolingDown(ServiceUnavailable):
    code = "router_cooling_down"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = {"Retry-After": str(retry_after_s)}


class RouterUnavailable(ServiceUnavailable):
    code = "router_unavailable"


def falls_back(error: RelayedError) -> bool:
    """Whether a provider's failure moves the request on to the next target."""
    if error.status_code != 429 and error.status_code < 500:
        return False
    try:
        code = json.loads(error.body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return True
    return code not in NOT_RETRIED_CODES


async def dispatch_routed(
    resources: Resources,
    route: Route,
    *,
    request_id: str,
    attempt: Attempt,
    limits: Sequence[LimitCheck],
    admitted: list[LimitState],
    chosen: Callable[[Route], None],
) -> tuple[EventReader, StreamEvent]:
    """Dispatch to ``route``'s targets in turn (``attempt`` each); ``chosen`` hears of each target tried, the last
    being the one that answered. 503 ``router_cooling_down`` when every target is cooling down; the last target's
    error when every target failed."""
    router = route.router
    assert router is not None
    redis, keys = resources.redis, resources.keys
    picked = await pick(redis, keys, router, request_id=request_id)
    if not picked.order:
        wait_s = max(1, -(-picked.cooling_ms // 1000))
        raise RouterCoolingDown(
            f"Every target of the router `{router.model_id}` failed recently and is cooling down; retry in {wait_s} s.",
            retry_after_s=wait_s,
        )
    attempts = _Attempts(resources, router, request_id=request_id, attempt=attempt, chosen=chosen)
    attempts.counted_at = picked.order[0] if router.strategy == "least_busy" else None
    try:
        for number, name in enumerate(picked.order):
            answer = await attempts.target(number, name, () if admitted else limits)
            if answer is not None:
                return answer
    finally:
        if attempts.counted_at is not None and not attempts.tried:  # no target was tried: nothing will release it
            resources.spawn(release_in_flight(redis, keys, request_id=request_id, target=attempts.counted_at))
    if attempts.failure is not None:
        raise attempts.failure
    raise RouterUnavailable(
        f"None of the targets of the router `{router.model_id}` is served any more ({', '.join(router.targets)}). "
        "An admin must update the router's targets."
    )


class _Attempts:
    """One request's tries of a router's targets."""

    def __init__(
        self,
        resources: Resources,
        router: RouterSpec,
        *,
        request_id: str,
        attempt: Attempt,
        chosen: Callable[[Route], None],
    ) -> None:
        self.resources, self.router, self.request_id = resources, router, request_id
        self.attempt, self.chosen = attempt, chosen
        self.counted_at: str | None = None  # where a ``least_busy`` request counts as in flight
        self.failure: BodhiError | None = None  # the last target's, when it moved on
        self.tried = False

    async def target(
        self, number: int, name: str, limits: Sequence[LimitCheck]
    ) -> tuple[EventReader, StreamEvent] | None:
        """The target's answer, or None when the request moves on to the next target."""
        resources, router = self.resources, self.router
        try:
            target = await resolve_model(resources.db, name, cache=resources.route_cache)
        except ModelNotFound:  # removed since the router was saved
            log.warning("router %s: its target %s is no longer served; skipped", router.model_id, name)
            return None
        if target.router is not None:
            return None
        if self.counted_at is not None and self.counted_at != name:
            await move_in_flight(
                resources.redis, resources.keys, request_id=self.request_id, old=self.counted_at, new=name
            )
            self.counted_at = name
        self.chosen(target)
        self.tried = True
        job_id = self.request_id if number == 0 else f"{self.request_id}.{number}"
        try:
            return await self.attempt(target, job_id, limits)
        except (RateLimited, BudgetExceeded):  # the caller's own limits: no target would be allowed
            raise
        except RelayedError as exc:
            if not falls_back(exc):
                raise
            await _cool_down(resources, router, name, exc)
            self.failure = exc
        except (NoWorkerAvailable, WorkerLost, TooManyRequests) as exc:
            log.warning("router %s: target %s unavailable (%s); trying the next", router.model_id, name, exc.code)
            self.failure = exc
        return None


async def _cool_down(resources: Resources, router: RouterSpec, target: str, error: RelayedError) -> None:
    named = retry_after_s(error.headers)
    seconds = named if named is not None else router.cooldown_s
    log.warning(
        "router %s: target %s answered HTTP %d; cooling it down for %g s and trying the next",
        router.model_id,
        target,
        error.status_code,
        seconds,
    )
    await cool_down(resources.redis, resources.keys, target, seconds)
