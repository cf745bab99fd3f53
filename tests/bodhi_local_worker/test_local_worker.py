"""``bodhi local-worker`` as a real process, driven through Redis exactly as the API drives it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

from bodhi_shared.contract import EventKind, LocalModel
from bodhi_shared.heartbeat import has_live_member
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND
from tests.bodhi_local_worker.conftest import (
    ALIAS_A,
    ALIAS_B,
    HEARTBEAT_TTL,
    LONG_ANSWER,
    LONG_CONTEXT,
    StartWorker,
    Workers,
)
from tests.bodhi_local_worker.local_api import LocalApi, chunk_payloads, startup_line
from tests.support.tiny_gguf import EOS_ID, N_EMBD

MESSAGES = [{"role": "user", "content": "Say hello."}]


async def test_streamed_chat(local_api: LocalApi, workers: Workers) -> None:
    events = await local_api.run(workers.alias_a, {"messages": MESSAGES, "max_tokens": 8, "stream": True})

    assert events[0].kind == EventKind.STARTED
    assert events[0].meta == {"worker": workers.a_id, "kind": LOCAL_WORKER_KIND}
    assert events[-1].kind == EventKind.DONE
    chunks = chunk_payloads(events[1:-1])
    assert chunks
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["model"] == ALIAS_A for chunk in chunks)
    assert all(chunk["choices"] for chunk in chunks)  # the client did not ask for a usage chunk
    usage = events[-1].usage
    assert usage is not None
    assert usage["prompt_tokens"] > 0
    assert 1 <= usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_usage_chunk_only_when_the_client_asked(local_api: LocalApi, workers: Workers) -> None:
    body = {"messages": MESSAGES, "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}
    asked = await local_api.run(workers.alias_a, body)
    added_by_the_api = await local_api.run(workers.alias_a, body, relay_usage_chunk=False)

    last = chunk_payloads(asked)[-1]
    assert last["choices"] == []
    assert last["usage"] == asked[-1].usage
    assert all(chunk["choices"] for chunk in chunk_payloads(added_by_the_api))
    assert added_by_the_api[-1].usage is not None  # DONE still reports it


async def test_non_streamed_chat(local_api: LocalApi, workers: Workers) -> None:
    events = await local_api.run(workers.alias_a, {"messages": MESSAGES, "max_tokens": 8})

    assert [event.kind for event in events] == [EventKind.STARTED, EventKind.RESPONSE]
    body = json.loads(events[1].data)
    assert body["object"] == "chat.completion"
    assert body["model"] == ALIAS_A
    assert isinstance(body["choices"][0]["message"]["content"], str)
    assert events[1].usage == body["usage"]
    assert body["usage"]["completion_tokens"] >= 1


async def test_embeddings(local_api: LocalApi, workers: Workers) -> None:
    events = await local_api.run(workers.alias_a, {"input": ["hello", "wörld"]}, endpoint="embeddings")

    assert [event.kind for event in events] == [EventKind.STARTED, EventKind.RESPONSE]
    body = json.loads(events[1].data)
    assert body["object"] == "list"
    assert body["model"] == ALIAS_A
    vectors = [item["embedding"] for item in body["data"]]
    assert len(vectors) == 2
    assert all(len(vector) == N_EMBD for vector in vectors)
    assert events[1].usage == {"prompt_tokens": body["usage"]["prompt_tokens"], "completion_tokens": 0} | {
        "total_tokens": body["usage"]["prompt_tokens"]
    }


async def test_a_malformed_request_is_a_400(local_api: LocalApi, workers: Workers) -> None:
    events = await local_api.run(workers.alias_a, {"messages": "hello"})

    assert events[-1].kind == EventKind.ERROR
    assert events[-1].status == 400
    assert json.loads(events[-1].data)["error"]["type"] == "invalid_request_error"


async def test_a_prompt_longer_than_the_context_is_a_400(local_api: LocalApi, workers: Workers) -> None:
    long = [{"role": "user", "content": "x" * 400}]  # one token per byte; the alias's context holds 256
    events = await local_api.run(workers.alias_b, {"messages": long, "max_tokens": 2})

    assert events[-1].kind == EventKind.ERROR
    assert events[-1].status == 400
    assert "context window" in json.loads(events[-1].data)["error"]["message"]


async def test_a_model_that_does_not_load_is_a_500_that_names_no_path(local_api: LocalApi, workers: Workers) -> None:
    broken = LocalModel(alias=ALIAS_B, path="/nowhere/secret-dir/model.gguf", context_params={})
    events = await local_api.run(broken, {"messages": MESSAGES, "max_tokens": 2})

    assert events[-1].kind == EventKind.ERROR
    assert events[-1].status == 500
    assert b"secret-dir" not in events[-1].data
    assert json.loads(events[-1].data)["error"]["message"] == f"The local model '{ALIAS_B}' could not be loaded."


async def test_a_job_past_its_pickup_deadline_is_skipped(local_api: LocalApi, workers: Workers) -> None:
    body = {"messages": MESSAGES, "max_tokens": 2}
    async with local_api.job(workers.alias_b, body, pickup_deadline=time.time() - 1) as events:
        assert await events.next(1.0) is None
    assert (await local_api.run(workers.alias_b, body))[-1].kind == EventKind.RESPONSE


async def test_each_alias_is_served_by_its_own_worker(local_api: LocalApi, workers: Workers) -> None:
    on_a = await local_api.run(workers.alias_a, {"messages": MESSAGES, "max_tokens": 2})
    on_b = await local_api.run(workers.alias_b, {"messages": MESSAGES, "max_tokens": 2})

    assert on_a[0].meta is not None
    assert on_a[0].meta["worker"] == workers.a_id
    assert on_b[0].meta is not None
    assert on_b[0].meta["worker"] == workers.b_id
    assert json.loads(on_b[-1].data)["model"] == ALIAS_B
    assert set(await local_api.alias_workers(ALIAS_A)) == {workers.a_id}
    assert set(await local_api.alias_workers(ALIAS_B)) == {workers.b_id}
    info = await local_api.redis.hgetall(local_api.keys.worker_info(workers.a_id))  # type: ignore[misc]
    assert info[b"aliases"] == ALIAS_A.encode()
    assert info[b"gpu"] == b"cpu"
    live = await local_api.redis.zrange(local_api.keys.workers(LOCAL_WORKER_KIND), 0, -1)
    assert {workers.a_id.encode(), workers.b_id.encode()} <= set(live)


async def test_catalogue_changes_are_followed(local_api: LocalApi, workers: Workers) -> None:
    alias = f"tiny-new-{uuid.uuid4().hex[:6]}"
    added = await local_api.put_alias(alias, workers.alias_a.path, {"n_ctx": 256})
    await local_api.wait_for_alias_workers(alias, {workers.a_id})  # B serves only what --models names

    events = await local_api.run(added, {"messages": MESSAGES, "max_tokens": 2})
    assert events[-1].kind == EventKind.RESPONSE

    await local_api.remove_alias(alias)
    await local_api.wait_for_alias_workers(alias, set())


async def test_cancel_stops_the_generation(local_api: LocalApi, workers: Workers) -> None:
    request_id = uuid.uuid4().hex
    # The end-of-text token forbidden: left alone, these tokens take the tiny model seconds.
    body = {"messages": MESSAGES, "max_tokens": LONG_ANSWER, "stream": True, "logit_bias": {str(EOS_ID): -100}}
    async with local_api.job(workers.alias_a, body, request_id=request_id) as events:
        started = await events.next(10)
        assert started is not None
        assert started.kind == EventKind.STARTED
        first = await events.next(1.0)  # the first chunk, unless the model holds back bytes of a character
        assert first is None or first.kind == EventKind.CHUNK
        await local_api.cancel(request_id)
        cancelled_at = time.monotonic()
        after = []
        while (event := await events.next(1.5)) is not None:
            after.append((time.monotonic() - cancelled_at, event))

    assert all(event.kind == EventKind.CHUNK for _, event in after)
    assert all(delay < 1.0 for delay, _ in after)
    # The model still answers at once: the cancelled sequence left its slot.
    asked = time.monotonic()
    events_next = await local_api.run(workers.alias_a, {"messages": MESSAGES, "max_tokens": 2}, within=5)
    assert events_next[-1].kind == EventKind.RESPONSE
    assert events_next[0].meta is not None
    assert events_next[0].meta["worker"] == workers.a_id
    assert time.monotonic() - asked < 3


async def test_gpu_option_pins_cuda_visible_devices(workers: Workers, start_worker: StartWorker) -> None:
    _, gpu, _ = await startup_line(workers.a)
    assert gpu == "cpu"
    pinned = start_worker("--gpu", "3", "--models", "tiny-pinned")
    _, gpu, visible = await startup_line(pinned)
    assert (gpu, visible) == ("3", "3")
    pinned.stop()


async def test_a_stopped_worker_cancels_its_job_and_leaves_at_once(
    local_api: LocalApi, start_worker: StartWorker, tiny_model: Path
) -> None:
    alias = f"tiny-stop-{uuid.uuid4().hex[:6]}"
    process = start_worker("--models", alias, BODHI_DRAIN_TIMEOUT="0")  # no drain: SIGTERM cancels at once
    worker_id, _, _ = await startup_line(process)
    await local_api.wait_for_alias_workers(alias, {worker_id})
    local = LocalModel(alias=alias, path=str(tiny_model), context_params=LONG_CONTEXT)
    body = {"messages": MESSAGES, "max_tokens": LONG_ANSWER, "stream": True, "logit_bias": {str(EOS_ID): -100}}

    async with local_api.job(local, body) as events:
        started = await events.next(10)
        assert started is not None
        assert started.kind == EventKind.STARTED
        await events.next(0.5)  # generating
        asked = time.monotonic()
        assert await asyncio.to_thread(process.stop) == 0
        assert time.monotonic() - asked < 3  # the generation stopped at its next token
        rest = await events.until_end(within=1)
    assert rest[-1].kind == EventKind.ERROR
    assert rest[-1].status == 503
    assert await local_api.alias_workers(alias) == {}
    assert await local_api.redis.zscore(local_api.keys.workers(LOCAL_WORKER_KIND), worker_id) is None
    assert not await local_api.redis.exists(local_api.keys.worker_info(worker_id))


async def test_a_killed_worker_drops_out_of_liveness(local_api: LocalApi, start_worker: StartWorker) -> None:
    alias = f"tiny-kill-{uuid.uuid4().hex[:6]}"
    process = start_worker("--models", alias)
    worker_id, _, _ = await startup_line(process)
    await local_api.wait_for_alias_workers(alias, {worker_id})

    process.kill()
    last_beat = (await local_api.alias_workers(alias))[worker_id]
    # The event itself: the API's own liveness check stops counting the worker (within a TTL and some margin).
    deadline = time.monotonic() + HEARTBEAT_TTL + 5
    while await has_live_member(local_api.redis, local_api.keys.alias_workers(alias), ttl=HEARTBEAT_TTL):
        assert time.monotonic() < deadline, "the killed worker still counts as live"
        await asyncio.sleep(0.05)

    assert (await local_api.alias_workers(alias))[worker_id] == last_beat  # the score stopped advancing


async def test_only_workers_that_follow_the_catalogue_are_followers(local_api: LocalApi, workers: Workers) -> None:
    followers = await local_api.followers()

    assert workers.a_id in followers
    assert workers.b_id not in followers  # --models: it never serves a new alias


async def test_a_follower_serves_a_new_alias_as_soon_as_the_api_says_so(
    local_api: LocalApi, workers: Workers, start_worker: StartWorker
) -> None:
    # A periodic re-read far away: only the API's message can make it serve the new alias within seconds.
    process = start_worker(BODHI_LOCAL_CATALOGUE_INTERVAL="600")
    worker_id, _, _ = await startup_line(process)
    await local_api.wait_for_alias_workers(ALIAS_A, {workers.a_id, worker_id})  # its first read is done
    alias = f"tiny-told-{uuid.uuid4().hex[:6]}"
    await local_api.put_alias(alias, workers.alias_a.path, {"n_ctx": 256})
    await local_api.announce_catalogue()
    told = time.monotonic()

    await local_api.wait_for_alias_workers(alias, {workers.a_id, worker_id}, within=3)
    assert time.monotonic() - told < 3
    assert worker_id in await local_api.followers()
    await local_api.remove_alias(alias)
    await local_api.announce_catalogue()
    await local_api.wait_for_alias_workers(alias, set(), within=3)
    assert await asyncio.to_thread(process.stop) == 0
    assert worker_id not in await local_api.followers()  # it left on the way out
    assert worker_id not in await local_api.alias_workers(ALIAS_A)
