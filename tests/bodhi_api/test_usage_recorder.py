"""Usage records: a record Postgres refuses is logged and dropped alone, never with the rest of its batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from bodhi_api.usage import UsageRecord, UsageRecorder
from tests.conftest import Gateway, RegisterUpstream
from tests.support.fake_upstream import Script


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as opened:
        yield opened


def usage_record(*, model: str = "m", prompt_tokens: int | None = 5) -> UsageRecord:
    return UsageRecord(
        created_at=datetime.now(UTC),
        request_id=uuid.uuid4().hex,
        user_id=None,
        token_id=None,
        endpoint="chat_completions",
        model=model,
        api_model_id=None,
        prompt_tokens=prompt_tokens,
        completion_tokens=3,
        total_tokens=None,
        ttft_ms=1.0,
        duration_ms=2.0,
        status="ok",
        http_status=200,
    )


async def written(db: asyncpg.Connection, records: list[UsageRecord]) -> set[str]:
    rows = await db.fetch(
        "SELECT request_id FROM usage_records WHERE request_id = ANY($1::text[])", [r.request_id for r in records]
    )
    return {r["request_id"] for r in rows}


async def test_a_refused_record_does_not_take_its_batch_with_it(
    pool: asyncpg.Pool, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    good = [usage_record() for _ in range(5)]
    refused = [usage_record(model="nul\x00byte"), usage_record(prompt_tokens=2**40)]  # text, INTEGER refuse them
    recorder = UsageRecorder(pool)
    for record in [good[0], refused[0], *good[1:3], refused[1], *good[3:]]:
        recorder.record(record)

    await recorder.flush()

    assert await written(db, good) == {r.request_id for r in good}
    assert not await written(db, refused)
    dropped = [r.getMessage() for r in caplog.records if "dropped the usage record" in r.getMessage()]
    assert len(dropped) == 2
    assert all(any(r.request_id in line for line in dropped) for r in refused)
    await recorder.flush()  # nothing left to retry forever
    assert not await written(db, refused)


async def test_a_provider_s_impossible_token_count_keeps_its_record(
    gateway: Gateway, client: httpx.AsyncClient, register_upstream: RegisterUpstream, db: asyncpg.Connection
) -> None:
    # Sent together, so their records share a batch: the impossible count must lose neither them nor its own.
    huge = {"prompt_tokens": 2**40, "completion_tokens": 3, "total_tokens": 2**40 + 3}
    boastful = await register_upstream(Script(usage=huge))
    plain = [await register_upstream(Script()) for _ in range(4)]
    body = {"messages": [{"role": "user", "content": "hi"}]}
    answers = await asyncio.gather(
        *(client.post("/v1/chat/completions", json=body | {"model": m}) for m in [boastful, *plain])
    )
    assert [a.status_code for a in answers] == [200] * 5

    models = [boastful, *plain]
    for _ in range(50):
        rows = await db.fetch(
            "SELECT model, prompt_tokens, completion_tokens, total_tokens FROM usage_records WHERE model = ANY($1)",
            models,
        )
        if len(rows) == len(models):
            break
        await asyncio.sleep(0.1)
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == set(models), "records were lost with the one Postgres refused"
    assert (by_model[boastful]["prompt_tokens"], by_model[boastful]["total_tokens"]) == (None, None)
    assert by_model[boastful]["completion_tokens"] == 3
    assert all(by_model[m]["prompt_tokens"] == 5 for m in plain)
