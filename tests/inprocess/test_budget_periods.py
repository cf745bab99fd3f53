"""A spent budget resumes when its UTC day or month ends, on a real Redis, without waiting for it.

A budget's Redis key is named after its period (``RedisKeys.budget``, ``2026-12-31`` or ``2026-12``), and the
period comes from the clock passed to ``PrincipalLimits.checks``: the key of the next period is another key, which
starts at nothing. The first test drives the real check-and-enqueue script and the real charge at chosen instants on
either side of a boundary; the second takes the request path (the API's clock moved on by a day, nothing else faked).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bodhi_api import inference
from bodhi_api.auth.limits import Limits, PrincipalLimits
from bodhi_api.auth.roles import Role
from bodhi_shared.queue import create_queue_pool
from bodhi_shared.rate_limits import BUDGET, BUDGET_MARGIN_MS, LimitExceeded
from bodhi_shared.redis_keys import RedisKeys
from tests.bodhi_shared.test_rate_limits import charge, enqueue
from tests.inprocess.fake_worker import USAGE, FakeWorker, text_answer
from tests.inprocess.harness import InProcessApp, assert_error
from tests.support.backing import new_name

MODEL = "gpt-4o-mini"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
USED = USAGE["total_tokens"]


@pytest.mark.parametrize(
    ("period", "last_moment", "next_moment"),
    [
        ("day", datetime(2026, 12, 30, 23, 59, 59, 900_000, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)),
        ("month", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("month", datetime(2028, 2, 29, 12, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC)),  # a leap year's February
    ],
)
async def test_a_spent_budget_refuses_until_its_period_ends_and_admits_in_the_next(
    redis_url: str, redis_prefix: str, period: Any, last_moment: datetime, next_moment: datetime
) -> None:
    keys = RedisKeys(f"{redis_prefix}:periods-{uuid.uuid4().hex[:8]}")
    budget = Limits(budget_tokens=100, budget_period=period)
    limits = PrincipalLimits(user_id=uuid.uuid4(), user=budget, token_id=uuid.uuid4(), token=budget)
    pool = await create_queue_pool(redis_url)
    queue = keys.namespace + ":queue"
    try:
        await pool.zadd(f"{queue}:workers", {"w": time.time() + 60})
        in_period = limits.checks(keys, last_moment)
        assert [c.kind for c in in_period] == [BUDGET, BUDGET]  # the token's and the user's
        assert [s.remaining for s in await enqueue(pool, queue, in_period)] == [100, 100]
        await charge(pool, in_period, 100)  # as a finished request charges it: the whole budget, spent

        with pytest.raises(LimitExceeded) as spent:
            await enqueue(pool, queue, limits.checks(keys, last_moment))
        assert spent.value.check.whose == "this API token"
        assert spent.value.retry_after_ms == pytest.approx((next_moment - last_moment).total_seconds() * 1000, abs=1000)

        next_period = limits.checks(keys, next_moment)
        assert {c.key for c in next_period}.isdisjoint(c.key for c in in_period)
        assert [s.remaining for s in await enqueue(pool, queue, next_period)] == [100, 100]  # whole again
        with pytest.raises(LimitExceeded):  # the spent period stays spent
            await enqueue(pool, queue, limits.checks(keys, last_moment))
        # The spent period's key goes away by itself, a margin after its period ends.
        left_ms = (next_moment - last_moment).total_seconds() * 1000
        assert 0 < await pool.pttl(in_period[0].key) <= left_ms + BUDGET_MARGIN_MS + 1000
    finally:
        await pool.delete(*[k async for k in pool.scan_iter(match=f"{keys.namespace}:*")])
        await pool.aclose()


class _Tomorrow(datetime):
    """``datetime`` whose ``now`` is a day on: the clock that ``inference`` reads for the period of a budget."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + timedelta(days=1)


async def test_a_tokens_daily_budget_spent_today_admits_again_tomorrow(
    bodhi: InProcessApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    power_user = await bodhi.account(Role.POWER_USER)
    await power_user.add_api_model([MODEL])
    owner = await bodhi.session_client(await bodhi.create_user(Role.USER))
    token = await owner.post(
        "/bodhi/v1/tokens", json={"name": new_name("t"), "budget_tokens": USED, "budget_period": "day"}
    )
    assert token.status_code == 201, token.text
    client = bodhi.client(token=token.json()["token"])

    async def ask() -> int:
        answer = await client.post("/v1/chat/completions", json=CHAT)
        await bodhi.resources.drain()  # the charge runs off the request path
        if answer.status_code == 429:
            assert_error(answer, 429, "rate_limit_error", "budget_exceeded")
        return answer.status_code

    async with FakeWorker(bodhi, text_answer("Hi")).running() as worker:
        today = [await ask(), await ask()]
        monkeypatch.setattr(inference, "datetime", _Tomorrow)
        tomorrow = [await ask(), await ask()]
        monkeypatch.undo()
        back_today = await ask()

    assert today == [200, 429]
    assert tomorrow == [200, 429]  # the next day's budget, whole, then spent in its turn
    assert back_today == 429
    assert len(worker.jobs) == 2  # refused requests never reached a worker
    tags = sorted(k.rsplit(":", 1)[1] for k in await bodhi.redis_keys() if ":budget:" in k)
    day = datetime.now(UTC)
    assert tags == [day.strftime("%Y-%m-%d"), (day + timedelta(days=1)).strftime("%Y-%m-%d")]
