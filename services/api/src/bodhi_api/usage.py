"""Token usage records: collected per request in memory, written to Postgres in batches off the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
MAX_BUFFERED = 50_000  # beyond this (Postgres down for long), the oldest records are dropped, with a warning

MAX_TOKEN_COUNT = 2**31 - 1  # the token columns are INTEGER
# What Postgres refuses for the record itself (as opposed to being unreachable): dropped, never retried.
REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
_INSERT = (
    "INSERT INTO usage_records (created_at, request_id, user_id, token_id, endpoint, model, api_model_id,"
    " prompt_tokens, completion_tokens, total_tokens, ttft_ms, duration_ms, status, http_status, target)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    created_at: datetime
    request_id: str
    user_id: uuid.UUID | None
    token_id: uuid.UUID | None
    endpoint: str
    model: str
    api_model_id: uuid.UUID | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    ttft_ms: float | None
    duration_ms: float
    status: str
    http_status: int
    target: str | None = None  # a request to a router: the target (a served id) that answered; ``model`` the router


def tokens_of(usage: dict[str, Any] | None) -> tuple[int | None, int | None, int | None]:
    """(prompt, completion, total) from a provider's ``usage``; None where it says nothing."""
    if not usage:
        return None, None, None

    def count(name: str) -> int | None:
        value = usage.get(name)
        # What a provider says is not checked by anyone else: a count the column cannot hold is no count.
        valid = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT
        return value if valid else None

    prompt, completion, total = count("prompt_tokens"), count("completion_tokens"), count("total_tokens")
    if total is None and prompt is not None and prompt + (completion or 0) <= MAX_TOKEN_COUNT:
        total = prompt + (completion or 0)
    return prompt, completion, total


class UsageRecorder:
    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db
        self._buffer: list[UsageRecord] = []
        self._task: asyncio.Task[None] | None = None

    def record(self, record: UsageRecord) -> None:
        self._buffer.append(record)
        if len(self._buffer) > MAX_BUFFERED:
            dropped = len(self._buffer) - MAX_BUFFERED
            del self._buffer[:dropped]
            log.warning("usage buffer full: dropped %d oldest records", dropped)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            try:
                await self.flush()
            except Exception:  # Postgres briefly away: keep the records for the next round
                log.warning("writing usage records failed; will retry", exc_info=True)

    async def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            await self._db.executemany(_INSERT, [astuple(r) for r in batch])
        except REFUSED:
            # One batch is one transaction: a single record Postgres refuses (a provider's token count beyond
            # INTEGER, a byte it cannot store) rolls back every other. Write them one by one: only those refused
            # are lost. Rare, so its round trips do not matter.
            await self._insert_each(batch)
        except BaseException:
            self._buffer[:0] = batch
            raise

    async def _insert_each(self, batch: list[UsageRecord]) -> None:
        for index, record in enumerate(batch):
            try:
                await self._db.execute(_INSERT, *astuple(record))
            except REFUSED as exc:  # retrying it would fail forever
                log.error(
                    "dropped the usage record of request %s (model %r): Postgres refused it: %s",
                    record.request_id,
                    record.model,
                    exc,
                )
            except BaseException:
                self._buffer[:0] = batch[index:]  # Postgres went away meanwhile: the rest waits for the next round
                raise
