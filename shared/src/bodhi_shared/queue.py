"""The job queue: arq with msgpack jobs, and a wake-up channel so pickup costs milliseconds, not a poll.

arq workers find jobs by polling a sorted set (every 0.5 s by default). Bodhi keeps arq's queue, locking and
retry bookkeeping, but an enqueuer also publishes the job's id on ``RedisKeys.wake_channel(queue)``; idle workers
are subscribed and try to start that job at once. The timed poll stays as a safety net at ``BODHI_QUEUE_POLL_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from arq import ArqRedis, Worker, create_pool
from arq.connections import RedisSettings as ArqRedisSettings
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.exceptions import RedisError

from bodhi_shared.contract import pack, unpack
from bodhi_shared.drain import finish_or_cancel
from bodhi_shared.logs import bound_request_id
from bodhi_shared.pubsub_listener import PubSubListener
from bodhi_shared.rate_limits import CHECK_LUA, COMMIT_LUA, LimitCheck, LimitState, parse_result

log = logging.getLogger(__name__)

REDIS_RETRY_MAX_S = 0.5  # longest wait between two tries of a worker's loop while Redis is unreachable
LOOP_EXIT_WAIT_S = 1.0  # in a drain, how long to let the loop finish a claim it is making (ms unless Redis hangs)


def arq_settings(redis_url: str) -> ArqRedisSettings:
    settings: ArqRedisSettings = ArqRedisSettings.from_dsn(redis_url)
    return settings


async def create_queue_pool(redis_url: str) -> ArqRedis:
    """An arq pool (a redis client) that enqueues msgpack jobs."""
    pool: ArqRedis = await create_pool(arq_settings(redis_url), job_serializer=pack, job_deserializer=unpack)
    return pool


async def enqueue_job(
    pool: ArqRedis,
    *,
    queue: str,
    wake_channel: str,
    function: str,
    payload: dict[str, Any],
    job_id: str,
    expires_s: float,
) -> None:
    """Put one job on ``queue`` and wake the idle workers of that queue, in one round trip.

    Writes what ``ArqRedis.enqueue_job`` writes (the job under arq's key, its id in the queue's sorted set), but
    without arq's WATCH/EXISTS check for an existing job: job ids here are request ids, unique by construction,
    so that check would only cost two more round trips on the hot path.
    """
    now_ms = timestamp_ms()
    job = serialize_job(function, (payload,), {}, None, now_ms, serializer=pack)
    async with pool.pipeline(transaction=True) as pipe:
        pipe.psetex(job_key_prefix + job_id, int(expires_s * 1000), job)
        pipe.zadd(queue, {job_id: now_ms})
        pipe.publish(wake_channel, job_id)
        await pipe.execute()


# Checks capacity and enqueues in one round trip, atomically. Returns {0, depth} when queued, {1, depth} when the
# queue is over its limit, {2, 0} when no worker of the queue has sent a heartbeat within the TTL.
_ENQUEUE_IF_CAPACITY = """
local depth = redis.call('ZCARD', KEYS[1])
if depth >= tonumber(ARGV[1]) then return {1, depth} end
if redis.call('ZCOUNT', KEYS[2], ARGV[2], '+inf') == 0 then return {2, 0} end
redis.call('PSETEX', KEYS[3], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[6])
return {0, depth}
"""


# The same with rate limits and budgets checked first (``rate_limits.CHECK_LUA``, on KEYS[4..] with ARGV triples
# from ARGV[8]): a limit reached returns {3, index, retry-after ms, 0, reset ms} and writes nothing; admitted, the
# rpm keys are moved on with the enqueue and the answer is {0, depth, remaining, reset ms, ...} for each limit.
_ENQUEUE_LIMITED = (
    "local first, argv0 = 4, 7\n"
    + CHECK_LUA
    + """
if blocked then return blocked end
local depth = redis.call('ZCARD', KEYS[1])
if depth >= tonumber(ARGV[1]) then return {1, depth} end
if redis.call('ZCOUNT', KEYS[2], ARGV[2], '+inf') == 0 then return {2, 0} end
"""
    + COMMIT_LUA
    + """
redis.call('PSETEX', KEYS[3], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[6])
local answer = {0, depth}
for _, v in ipairs(states) do answer[#answer + 1] = v end
return answer
"""
)


class QueueFull(Exception):
    def __init__(self, depth: int) -> None:
        super().__init__(f"{depth} jobs waiting")
        self.depth = depth


class NoLiveWorker(Exception):
    pass


async def enqueue_if_capacity(
    pool: ArqRedis,
    *,
    queue: str,
    wake_channel: str,
    live_workers: str,
    heartbeat_ttl: float,
    depth_limit: int,
    function: str,
    payload: dict[str, Any],
    job_id: str,
    expires_s: float,
    limits: Sequence[LimitCheck] = (),
) -> list[LimitState]:
    """Like ``enqueue_job``, but only if a worker of ``queue`` is alive, the queue is under ``depth_limit`` and
    no rate limit or budget in ``limits`` is reached (``rate_limits``).

    Raises ``QueueFull``, ``NoLiveWorker`` or ``rate_limits.LimitExceeded`` otherwise; returns what is left of
    each limit. One round trip, where checking first would take two; without limits, the script is the plain one.
    """
    now_ms = timestamp_ms()
    job = serialize_job(function, (payload,), {}, None, now_ms, serializer=pack)
    keys_and_args: list[Any] = [
        queue,
        live_workers,
        job_key_prefix + job_id,
        depth_limit,
        time.time() - heartbeat_ttl,
        int(expires_s * 1000),
        job,
        now_ms,
        job_id,
        wake_channel,
    ]
    if limits:
        keys_and_args[3:3] = [c.key for c in limits]
        keys_and_args += [a for c in limits for a in c.args()]
        result = await pool.eval(_ENQUEUE_LIMITED, 3 + len(limits), *keys_and_args)  # type: ignore[misc]
    else:
        result = await pool.eval(_ENQUEUE_IF_CAPACITY, 3, *keys_and_args)  # type: ignore[misc]  # sync|async union
    status, depth = int(result[0]), int(result[1])
    if status == 1:
        raise QueueFull(depth)
    if status == 2:
        raise NoLiveWorker
    return parse_result(limits, result) if limits else []


# Puts a job a dead worker had claimed back on its queue, under the same id, if a worker of the queue is alive:
# first arq's marks of the claim (in progress, its count of tries: arq would refuse a second try of a job run at
# most once) and the claim record go, then the job is written and announced as by ``_ENQUEUE_IF_CAPACITY``. No
# depth limit: the request was admitted already. Returns 0 when queued, 2 when no worker is alive.
_REQUEUE = """
if redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf') == 0 then return 2 end
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])
redis.call('PSETEX', KEYS[3], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[5])
return 0
"""


async def requeue_job(
    pool: ArqRedis,
    *,
    queue: str,
    wake_channel: str,
    live_workers: str,
    heartbeat_ttl: float,
    function: str,
    payload: dict[str, Any],
    job_id: str,
    expires_s: float,
) -> None:
    """Enqueue again, under its own id, a job whose worker died before it sent anything; ``NoLiveWorker`` if no
    worker of ``queue`` is alive to take it. One round trip."""
    now_ms = timestamp_ms()
    job = serialize_job(function, (payload,), {}, None, now_ms, serializer=pack)
    keys_and_args: list[Any] = [
        queue,
        live_workers,
        job_key_prefix + job_id,
        in_progress_key_prefix + job_id,
        retry_key_prefix + job_id,
        claim_key(queue, job_id),
        time.time() - heartbeat_ttl,
        int(expires_s * 1000),
        job,
        now_ms,
        job_id,
        wake_channel,
    ]
    status = await pool.eval(_REQUEUE, 6, *keys_and_args)  # type: ignore[misc]  # sync|async union
    if status == 2:
        raise NoLiveWorker


async def withdraw_job(pool: ArqRedis, *, queue: str, job_id: str) -> bool:
    """Take a job off the queue if no worker has started it; True when it was still waiting."""
    removed: int = await pool.zrem(queue, job_id)
    return removed == 1


def active_at_key(queue: str) -> str:
    """When a worker of ``queue`` last took a job off it or was seen running one (unix ms).

    It tells the API that waits for a pickup a busy queue (keep waiting for a turn) from a stuck one (503).
    """
    return f"{queue}:active-at"


async def last_active(pool: ArqRedis, queue: str) -> float | None:
    """Unix time at which a worker of ``queue`` was last seen taking or running a job; None: not for a day."""
    value = await pool.get(active_at_key(queue))
    return int(value) / 1000 if value is not None else None


def claim_key(queue: str, job_id: str) -> str:
    """Which worker claimed a job of ``queue`` (its id), for ``CLAIM_TTL_MS``.

    It tells the API that waits for a job's first event who to watch before that worker's STARTED arrives: a worker
    killed between its claim and its STARTED would otherwise leave a job nobody runs (``dispatch.dispatch``).
    """
    return f"{queue}:claim:{job_id}"


async def claimed_by(pool: ArqRedis, queue: str, job_id: str) -> str | None:
    """The id of the worker that claimed the job (within ``CLAIM_TTL_MS``); None when nobody did, or long ago."""
    value = await pool.get(claim_key(queue, job_id))
    return value.decode() if isinstance(value, bytes) else value


ACTIVE_TTL_MS = 86_400_000
# Only the moments between a claim and the claiming worker's STARTED (milliseconds) need the claim record; a
# minute covers a worker that dies then (seen by its heartbeat's TTL) without keeping a key per job for long.
CLAIM_TTL_MS = 60_000


# arq's start_jobs claims a job with WATCH, EXISTS, ZSCORE and MULTI/PSETEX/EXEC: four round trips. The same
# checks in one atomic script: not already in progress, still queued, due; then mark it in progress, take it off
# the queue (arq leaves it there until it finishes: the API's ``withdraw_job`` could then "withdraw" a job a worker
# is running, and the queue's depth would count running jobs as waiting; jobs are never retried, so nothing needs
# it there), note the time on the queue (``active_at_key``) and, if the worker has an id, who claimed it
# (``claim_key``).
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
redis.call('PSETEX', KEYS[1], ARGV[3], '1')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[4])
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[6]) end
return score
"""


class WakeableWorker(Worker):
    """An arq worker that polls as soon as a message arrives on its queue's wake channel.

    ``drain`` stops it gracefully: its loop ends (no more claims), its running jobs finish or, after the drain
    timeout, are cancelled.
    """

    wakes: PubSubListener | None = None

    def __init__(self, *args: Any, wake_channel: str, worker_id: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("job_serializer", pack)
        kwargs.setdefault("job_deserializer", unpack)
        super().__init__(*args, **kwargs)
        self._wake_channel = wake_channel
        self._worker_id = worker_id or ""  # recorded with each claim (``claim_key``); the heartbeat's id
        self._wake = asyncio.Event()
        self._announced: list[bytes] = []  # job ids from wake messages, not started yet
        self._last_active = 0.0  # monotonic time this worker last noted on its queue that it works
        self._then_on_job_start, self.on_job_start = self.on_job_start, self._forget_arq_keys

    async def main(self) -> None:
        # Same start-up as arq's Worker.main; the loop below replaces its fixed-interval poll().
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        # Supervised: after a Redis outage it subscribes again; meanwhile the poll below still finds the jobs.
        self.wakes = PubSubListener(
            self.pool, [self._wake_channel], self._on_wake, name=f"wake listener of {self.queue_name}"
        )
        await self.wakes.start()
        last_poll, outage_since = 0.0, None
        try:
            while self.allow_pick_jobs:  # until a drain begins (stop_taking_jobs); the jobs run in their own tasks
                try:
                    last_poll = await self._round(last_poll)
                except (RedisError, OSError) as exc:
                    # arq's own loop would end the process here; the jobs running now go on, and so does this loop
                    # once Redis answers again.
                    if outage_since is None:
                        outage_since = time.monotonic()
                        log.warning("%s: Redis unreachable (%s); retrying", self.queue_name, type(exc).__name__)
                    await asyncio.sleep(min(REDIS_RETRY_MAX_S, max(self.poll_delay_s, time.monotonic() - outage_since)))
                    continue
                if outage_since is not None:
                    log.warning(
                        "%s: Redis answers again after %.1f s", self.queue_name, time.monotonic() - outage_since
                    )
                    outage_since = None
        finally:
            if self.wakes is not None:
                await self.wakes.stop()

    async def _round(self, last_poll: float) -> float:
        """One turn of the loop: start announced jobs, poll when due, note activity, wait for a wake-up."""
        self._wake.clear()
        announced, self._announced = self._announced, []
        if announced and self.allow_pick_jobs and self.job_counter < self.max_jobs:
            # Straight to the announced jobs: no ZRANGEBYSCORE round trip on the way to a client's first
            # token. arq's start_jobs still takes each one under its lock, so two workers never both run it.
            await self.start_jobs(announced)
        if not announced or time.monotonic() - last_poll >= self.poll_delay_s:
            last_poll = time.monotonic()
            await self._poll_iteration()  # the queue itself, finished tasks, arq's health check
        if self.job_counter and time.monotonic() - self._last_active >= self.poll_delay_s / 2:
            # Busy: requests queued behind this worker's jobs wait for their turn (see active_at_key). Half
            # the poll interval, as iterations come about one poll interval apart: a full one would skip
            # every other iteration whenever one came a little early, leaving two intervals between marks.
            self._last_active = time.monotonic()
            await self.pool.set(active_at_key(self.queue_name), timestamp_ms(), px=ACTIVE_TTL_MS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_delay_s)
        return last_poll

    async def _forget_arq_keys(self, ctx: dict[str, Any]) -> None:
        """Delete arq's keys of a job as it starts (they serve nothing from then on), then run the ``on_job_start``
        given.

        arq deletes them when a job ends; a worker killed mid-job (SIGKILL, out of memory) would leave behind the
        count of its tries (``arq:retry:{id}``, for 24.5 hours), its in-progress mark (for the job timeout, an hour)
        and the job itself (until it expires). Bodhi's jobs run once (``max_tries=1``): the claim took this one off
        the queue, so no worker can claim it again whatever its marks say, and arq has read the job and its count
        by now. One round trip, before the job's first event.
        """
        job_id = ctx["job_id"]
        try:
            await self.pool.delete(retry_key_prefix + job_id, in_progress_key_prefix + job_id, job_key_prefix + job_id)
        except (RedisError, OSError) as exc:  # the job goes on (and meets the outage itself); its keys expire later
            log.warning("job %s: arq's keys stay until they expire (%s)", job_id, type(exc).__name__)
        if self._then_on_job_start is not None:
            await self._then_on_job_start(ctx)

    def _on_wake(self, _channel: str, job_id: bytes) -> None:
        if self.allow_pick_jobs:
            self._announced.append(job_id)
            self._wake.set()

    def stop_taking_jobs(self) -> None:
        """The start of a drain: claim nothing more, from wake-ups or polls; the loop ends, running jobs go on."""
        self.allow_pick_jobs = False
        self._announced.clear()
        self._wake.set()  # the loop, waiting for a wake-up, ends now instead of after the poll interval

    async def drain(self, *, within: float, now: asyncio.Event) -> int:
        """Stop taking jobs; let the running ones finish for up to ``within`` seconds (until ``now`` is set, at
        most), then cancel the rest, which tell their clients in-band. Returns how many were cancelled."""
        deadline = time.monotonic() + within
        self.stop_taking_jobs()
        if self.main_task is not None:  # a claim in flight completes first, so its job is drained too
            await asyncio.wait({self.main_task}, timeout=min(LOOP_EXIT_WAIT_S, within))
        jobs = list(self.tasks.values())
        return await finish_or_cancel(jobs, within=max(0.0, deadline - time.monotonic()), now=now)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's start_jobs, with each job claimed in one round trip (``_CLAIM``) instead of four."""
        for job_id_b in job_ids:
            if not self.allow_pick_jobs:  # a drain began while this loop claimed the jobs before
                return
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            job_id = job_id_b.decode()
            keys_and_args: list[Any] = [
                in_progress_key_prefix + job_id,
                self.queue_name,
                active_at_key(self.queue_name),
                claim_key(self.queue_name, job_id),
                job_id,
                timestamp_ms(),
                int(self.in_progress_timeout_s * 1000),
                ACTIVE_TTL_MS,
                self._worker_id,
                CLAIM_TTL_MS,
            ]
            score = await self.pool.eval(_CLAIM, 4, *keys_and_args)  # type: ignore[misc]  # sync|async union
            if not score:  # taken by another worker, withdrawn, or not due yet
                self.job_counter -= 1
                self.sem.release()
                continue
            self._last_active = time.monotonic()  # the claim noted it on the queue
            with bound_request_id(job_id):  # job ids are request ids: arq's lines of the job name it too
                task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    def _release_sem_dec_counter_on_complete(self) -> None:
        # A finished job that frees the last slot: look at the queue again (jobs announced while the worker was
        # full were left there) instead of waiting for the next poll. With slots to spare, announced jobs start
        # at once, so a poll here would only delay the next one.
        was_full = self.job_counter >= self.max_jobs
        super()._release_sem_dec_counter_on_complete()
        if was_full:
            self._wake.set()
