"""Scale-out proven on one machine: two API replicas behind a real nginx, two remote and two local workers.

Every process is the real ``bodhi`` command, on the test run's Postgres and a Redis namespace of this module's own;
nginx (``tests/support/nginx.py``) balances over the replicas as ``deploy/nginx/bodhi.conf`` does. The tests run in
file order, the destructive ones last: (a) 200 concurrent streams all complete through nginx; (b) a session and a
token made on one replica work on the other; (c) an API model created on one replica is served by the other at
once; (e) a remote worker SIGKILLed under load loses no request that had not started streaming; (f) a local
worker SIGKILLed with requests queued for its alias leaves them to the other; (d) an API replica SIGKILLed under
streams fails only its own streams, and new requests succeed through nginx.

The figures (streams, failures, seconds) are printed in pytest's terminal summary, in any run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis

from bodhi_shared.queue import claim_key
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND, REMOTE_WORKER_KIND, RedisKeys
from tests.conftest import ADMIN_PASSWORD, TEST_API_KEY, gateway_env
from tests.support.backing import new_name
from tests.support.fake_upstream import FakeUpstream, Script, free_port
from tests.support.nginx import UPSTREAM_HEADER, Nginx, nginx_binary
from tests.support.processes import BodhiProcess, create_user_and_token, wait_until_serving
from tests.support.tiny_gguf import EOS_ID, write_tiny_llama_gguf

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        nginx_binary() is None and not os.environ.get("CI"),
        reason="nginx is not installed (apt-get install nginx-light); CI installs it",
    ),
]

HEARTBEAT_TTL = 3.0  # the default: two busy cores can starve a live worker's heartbeat for a second
# Heartbeats every 0.2 s: a killed worker is noticed within the TTL and a second.
SETTINGS = {
    "BODHI_HEARTBEAT_INTERVAL": "0.2",
    "BODHI_HEARTBEAT_TTL": str(HEARTBEAT_TTL),
    "BODHI_TRUSTED_PROXIES": "127.0.0.1",  # nginx, on loopback
    "BODHI_LOG_LEVEL": "INFO",  # DEBUG under 200 streams costs the two cores more than the streams do
    "BODHI_DRAIN_TIMEOUT": "2",
}
STREAMS = 200
WORKER_HEADER = "x-bodhi-worker"
MESSAGES = [{"role": "user", "content": "hi"}]


class Figures:
    """Lines for pytest's terminal summary (a plugin registered at run time): shown in any run, captured or not."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.write_sep("-", "scale-out on one machine (tests/test_scale_out.py)")
            for line in self.lines:
                terminalreporter.write_line(line)


@dataclass
class Cluster:
    env: dict[str, str]
    keys: RedisKeys
    apis: list[BodhiProcess]
    api_urls: list[str]  # http://127.0.0.1:PORT of each replica, in nginx's order
    remote: list[BodhiProcess]
    local: list[BodhiProcess]
    nginx: Nginx
    admin: str
    token: str
    alias: str  # a local alias both local workers serve
    figures: Figures
    upstream: FakeUpstream

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def replica_of(self, upstream: str | None) -> int | None:
        """Which replica nginx's ``$upstream_addr`` names last (the one that answered), by index."""
        if not upstream:
            return None
        served = upstream.split(",")[-1].strip()
        return next((i for i, url in enumerate(self.api_urls) if url.removeprefix("http://") == served), None)

    def logs(self) -> str:
        parts = [f"--- {p.log_path.name}\n{p.log_text()[-3000:]}" for p in [*self.apis, *self.remote, *self.local]]
        return "\n".join([*parts, f"--- nginx\n{self.nginx.logs()[-3000:]}"])

    def report(self, line: str) -> None:
        self.figures.lines.append(line)


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Figures:
    plugins = request.config.pluginmanager
    name = "bodhi-scale-out-figures"
    found = plugins.get_plugin(name)
    if isinstance(found, Figures):
        return found
    created = Figures()
    plugins.register(created, name)
    return created


def start_all(
    env: dict[str, str], scratch: Path, alias: str
) -> tuple[list[BodhiProcess], list[str], list[BodhiProcess]]:
    """Two replicas, two remote and two local workers, started together (their start-ups overlap)."""
    ports = [free_port(), free_port()]
    apis = [
        BodhiProcess(["api"], env=env | {"BODHI_PORT": str(port)}, log_path=scratch / f"api-{i}.log")
        for i, port in enumerate(ports)
    ]
    workers = [BodhiProcess(["remote-worker"], env=env, log_path=scratch / f"remote-{i}.log") for i in range(2)] + [
        BodhiProcess(["local-worker", "--models", alias], env=env, log_path=scratch / f"local-{i}.log")
        for i in range(2)
    ]
    return apis, [f"http://127.0.0.1:{port}" for port in ports], workers


def wait_for_members(client: redis.Redis, key: str, count: int, processes: list[BodhiProcess]) -> None:
    deadline = time.monotonic() + 60
    while int(client.zcount(key, time.time() - HEARTBEAT_TTL, "+inf")) < count:  # type: ignore[arg-type]
        for process in processes:
            assert process.popen.poll() is None, process.log_text()
        assert time.monotonic() < deadline, f"fewer than {count} live members in {key}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(
    database_url: str,
    redis_url: str,
    fake_upstream: FakeUpstream,
    figures: Figures,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    if nginx_binary() is None:
        pytest.fail("nginx is not installed (apt-get install nginx-light)")
    scratch = tmp_path_factory.mktemp("scale-out")
    prefix = new_name("bodhitest-scale")
    env = (
        gateway_env(database_url=database_url, redis_url=redis_url, redis_prefix=prefix, home=scratch / "home", port=0)
        | SETTINGS
    )
    alias = f"tiny-scale-{uuid.uuid4().hex[:6]}"
    model_path = write_tiny_llama_gguf(scratch / "tiny.gguf").resolve()
    keys = RedisKeys(prefix)
    client = redis.Redis.from_url(redis_url)
    began = time.monotonic()
    apis, api_urls, workers = start_all(env, scratch, alias)
    nginx: Nginx | None = None
    try:
        admin = new_name("scale-admin")
        token = create_user_and_token(env, username=admin, password=ADMIN_PASSWORD)  # while the processes start
        for url, api in zip(api_urls, apis, strict=True):
            wait_until_serving(url, api)
        nginx = Nginx(scratch / "nginx", replicas=[url.removeprefix("http://") for url in api_urls])
        nginx.wait_until_serving()
        auth = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{api_urls[0]}/bodhi/v1/models/alias",
            headers=auth,
            # One request at a time per worker (no batching: tests/bodhi_local_worker has those), so that
            # requests queue for the alias and a killed worker leaves a queue to the other (test f).
            json={"alias": alias, "path": str(model_path), "context_params": {"n_ctx": 1024, "n_parallel": 1}},
            timeout=20,
        )
        assert created.status_code == 201, created.text
        wait_for_members(client, keys.workers(REMOTE_WORKER_KIND), 2, workers)
        wait_for_members(client, keys.alias_workers(alias), 2, workers)
        started = Cluster(
            env=env,
            keys=keys,
            apis=apis,
            api_urls=api_urls,
            remote=workers[:2],
            local=workers[2:],
            nginx=nginx,
            admin=admin,
            token=token,
            alias=alias,
            figures=figures,
            upstream=fake_upstream,
        )
        started.report(
            f"start-up: 2 API replicas, 2 remote workers, 2 local workers and nginx serving in "
            f"{time.monotonic() - began:.1f} s"
        )
        yield started
    finally:
        for process in [*apis, *workers]:
            process.stop(timeout=10)
        if nginx is not None:
            nginx.stop()
        leftover = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if leftover:
            client.delete(*leftover)
        client.close()


@pytest.fixture
async def lb(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    """A client of nginx, with the admin's token, allowed as many connections as the tests open."""
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    async with httpx.AsyncClient(
        base_url=cluster.nginx.base_url, headers=cluster.auth, timeout=60, limits=limits
    ) as http:
        yield http


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def api_model(http: httpx.AsyncClient, cluster: Cluster, script: Script) -> str:
    """A fresh model id on the fake provider, as an API model created through ``http``."""
    name = f"scale-{uuid.uuid4().hex[:8]}"
    cluster.upstream.scripts[name] = script
    created = await http.post(
        "/bodhi/v1/models/api",
        json={
            "name": f"scale {name}",
            "base_url": cluster.upstream.base_url,
            "api_key": TEST_API_KEY,
            "models": [name],
        },
    )
    assert created.status_code == 201, created.text
    return name


@dataclass
class Ended:
    """How one stream ended, as its client saw it."""

    status: int = 0
    contents: list[str] = field(default_factory=list)
    done: bool = False  # data: [DONE] arrived
    error: str | None = None  # the code of a plain or in-band error
    cut: bool = False  # the connection broke before its end
    upstream: str | None = None  # nginx's X-Bodhi-Upstream
    worker: str | None = None  # X-Bodhi-Worker

    def complete(self, chunks: int | None = None) -> bool:
        whole = chunks is None or self.contents == [f"tok{i} " for i in range(chunks)]
        return self.status == 200 and self.done and self.error is None and not self.cut and whole


async def read_stream(http: httpx.AsyncClient, body: dict[str, Any], *, first: asyncio.Event | None = None) -> Ended:
    ended = Ended()
    try:
        async with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
            ended.status = response.status_code
            ended.upstream = response.headers.get(UPSTREAM_HEADER)
            ended.worker = response.headers.get(WORKER_HEADER)
            if response.status_code != 200:
                ended.error = json.loads(await response.aread())["error"]["code"]
                return ended
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line.removeprefix("data: ")
                if payload == "[DONE]":
                    ended.done = True
                    continue
                data = json.loads(payload)
                if "error" in data:
                    ended.error = data["error"]["code"]
                    continue
                ended.contents += [c["delta"]["content"] for c in data["choices"] if c["delta"].get("content")]
                if first is not None:
                    first.set()
    except httpx.HTTPError:
        ended.cut = True
    return ended


async def all_under_way(
    streams: Sequence[asyncio.Future[Ended]], firsts: list[asyncio.Event], cluster: Cluster
) -> None:
    """Until every stream has had its first chunk; fails at once, with how it ended, if one ended before."""
    deadline = time.monotonic() + 20
    while not all(first.is_set() for first in firsts):
        early = [s.result() for s, first in zip(streams, firsts, strict=True) if s.done() and not first.is_set()]
        assert not early, (early, cluster.logs())
        assert time.monotonic() < deadline, cluster.logs()
        await asyncio.sleep(0.02)


async def test_a_200_concurrent_streams_all_complete_through_nginx(cluster: Cluster, lb: httpx.AsyncClient) -> None:
    chunks = 8
    model = await api_model(lb, cluster, Script(chunks=chunks, delay=0.1))
    began = time.monotonic()
    ends = await asyncio.gather(*(read_stream(lb, {"model": model, "messages": MESSAGES}) for _ in range(STREAMS)))
    seconds = time.monotonic() - began

    failures = [e for e in ends if not e.complete(chunks)]
    replicas = Counter(cluster.replica_of(e.upstream) for e in ends)
    workers = Counter(e.worker for e in ends)
    cluster.report(
        f"a) {STREAMS} concurrent streams of {chunks} chunks ({0.1:g} s apart) through nginx: "
        f"{STREAMS - len(failures)} complete, {len(failures)} failed, in {seconds:.1f} s; "
        f"per replica {sorted(replicas.values())}, per remote worker {sorted(workers.values())}"
    )
    assert not failures, (failures[:5], cluster.logs())
    assert set(replicas) == {0, 1}, replicas  # nginx balanced over both replicas
    assert len(workers) == 2, workers  # and both remote workers took jobs
    assert len(cluster.upstream.requests_for(model)) == STREAMS


async def login(url: str, username: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        response = await http.post("/bodhi/v1/auth/login", json={"username": username, "password": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
        return response.cookies["bodhi_session"]


async def test_b_a_session_and_a_token_made_on_one_replica_work_on_the_other(cluster: Cluster) -> None:
    one, two = cluster.api_urls
    session = {"Cookie": f"bodhi_session={await login(one, cluster.admin)}"}
    async with (
        httpx.AsyncClient(base_url=two, timeout=20) as on_two,
        httpx.AsyncClient(base_url=one, timeout=20) as on_one,
    ):
        me = await on_two.get("/bodhi/v1/user", headers=session)
        assert me.status_code == 200, me.text
        assert me.json()["username"] == cluster.admin
        made = await on_two.post("/bodhi/v1/tokens", headers=session, json={"name": "scale-out", "scope": "user"})
        assert made.status_code == 201, made.text
        token = {"Authorization": f"Bearer {made.json()['token']}"}
        assert (await on_one.get("/v1/models", headers=token)).status_code == 200  # made on two, used on one
        assert (await on_two.get("/v1/models", headers=token)).status_code == 200
        assert (await on_one.post("/bodhi/v1/auth/logout", headers=session)).status_code == 204  # ended on one ...
        assert (await on_two.get("/bodhi/v1/user", headers=session)).status_code == 401  # ... is over on two
    cluster.report("b) a session made on replica 1 and a token made with it on replica 2 work on both")


async def test_c_an_api_model_created_on_one_replica_is_served_by_the_other_at_once(cluster: Cluster) -> None:
    one, two = cluster.api_urls
    async with (
        httpx.AsyncClient(base_url=one, headers=cluster.auth, timeout=20) as on_one,
        httpx.AsyncClient(base_url=two, headers=cluster.auth, timeout=20) as on_two,
    ):
        model = await api_model(on_one, cluster, Script(chunks=2))
        answered = await on_two.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
        listed = await on_two.get("/v1/models")
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"] == "tok0 tok1 "
    assert model in {m["id"] for m in listed.json()["data"]}
    cluster.report("c) an API model created on replica 1 answered its first request on replica 2, with no wait")


async def claims(client: Redis, queue: str) -> dict[str, str]:
    """Job id -> the worker that claimed it, for the claims still recorded on ``queue``."""
    found: dict[str, str] = {}
    async for key in client.scan_iter(match=claim_key(queue, "*"), count=1000):
        worker = await client.get(key)
        if worker is not None:
            found[key.decode().rsplit(":", 1)[1]] = worker.decode()
    return found


async def kill_worker(client: Redis, cluster: Cluster, worker_id: str, processes: list[BodhiProcess]) -> BodhiProcess:
    """SIGKILL the process of ``worker_id`` (its heartbeat's description names its pid)."""
    pid = int(await client.hget(cluster.keys.worker_info(worker_id), "pid"))  # type: ignore[misc]  # sync|async union
    process = next(p for p in processes if p.popen.pid == pid)
    os.kill(pid, signal.SIGKILL)
    process.popen.wait()
    return process


async def test_e_a_remote_worker_killed_under_load_loses_no_request_that_had_not_started_streaming(
    cluster: Cluster, lb: httpx.AsyncClient, aredis: Redis
) -> None:
    """Streaming ones may end with an in-band ``worker_lost``; those still waiting for their provider's first byte
    (claimed by the killed worker, nothing sent yet) are taken up by the other worker and complete."""
    queue = cluster.keys.remote_queue
    streaming = await api_model(lb, cluster, Script(chunks=40, delay=0.1))  # 4 s: under way at the kill
    waiting = await api_model(lb, cluster, Script(chunks=5, delay=0.05, latency=1.5))  # no byte for 1.5 s
    firsts = [asyncio.Event() for _ in range(20)]
    under_way = [
        asyncio.ensure_future(read_stream(lb, {"model": streaming, "messages": MESSAGES}, first=f)) for f in firsts
    ]
    await all_under_way(under_way, firsts, cluster)
    before = await claims(aredis, queue)  # those of the streams under way among them
    began = time.monotonic()
    pending = [asyncio.ensure_future(read_stream(lb, {"model": waiting, "messages": MESSAGES})) for _ in range(60)]
    while len(cluster.upstream.requests_for(waiting)) < len(pending):  # every one claimed, at the provider
        assert time.monotonic() - began < 20, cluster.logs()
        await asyncio.sleep(0.02)
    new_claims = {job: worker for job, worker in (await claims(aredis, queue)).items() if job not in before}
    per_worker = Counter(new_claims.values())
    victim, victims_jobs = per_worker.most_common(1)[0]
    await kill_worker(aredis, cluster, victim, cluster.remote)
    killed_at = time.monotonic()
    late = await asyncio.wait_for(asyncio.gather(*pending), 60)
    started = await asyncio.wait_for(asyncio.gather(*under_way), 60)
    seconds = time.monotonic() - killed_at

    survivor = await live_other(aredis, cluster.keys.workers(REMOTE_WORKER_KIND), victim)
    not_started_failed = [e for e in late if not e.complete(5)]
    started_lost = [e for e in started if not e.complete(40)]
    cluster.report(
        f"e) remote worker SIGKILLed with {len(under_way)} streams under way and {len(pending)} requests claimed but "
        f"not started ({victims_jobs} of them on the killed worker): not started {len(late) - len(not_started_failed)}"
        f" complete, {len(not_started_failed)} failed; under way {len(started) - len(started_lost)} complete, "
        f"{len(started_lost)} ended with an in-band error; all ended {seconds:.1f} s after the kill"
    )
    assert not not_started_failed, (not_started_failed[:5], cluster.logs())
    assert {e.worker for e in late} == {survivor}  # the killed worker's jobs ran again on the other
    assert len(cluster.upstream.requests_for(waiting)) == len(pending) + victims_jobs  # each once more, no more
    assert all(e.error == "worker_lost" and e.done and not e.cut for e in started_lost), started_lost
    assert all(e.worker != victim for e in started if e.complete(40))


async def test_f_a_local_worker_killed_leaves_its_alias_queue_to_the_other(
    cluster: Cluster, lb: httpx.AsyncClient, aredis: Redis
) -> None:
    """Six generations of 900 tokens (about a second each) for an alias two workers serve one at a time: two run,
    four wait in the alias's queue. One worker is SIGKILLed: the waiting ones go to the other, and so does the one
    it was running, which had sent nothing yet (not streamed); at most that one may fail.

    Not streamed: llama-cpp-python's streaming of the tiny model's byte tokens slows down with their number
    (900 streamed tokens take over a minute, against under a second whole)."""
    queue = cluster.keys.local_queue(cluster.alias)
    body = {
        "model": cluster.alias,
        "messages": MESSAGES,
        "max_tokens": 900,
        "logit_bias": {str(EOS_ID): -100},  # no early end: each generation is 900 tokens
    }
    assert (await lb.post("/v1/chat/completions", json={**body, "max_tokens": 2})).status_code == 200  # loaded
    before = await claims(aredis, queue)
    began = time.monotonic()
    requests = [asyncio.ensure_future(lb.post("/v1/chat/completions", json=body)) for _ in range(6)]
    while (await aredis.zcard(queue)) < 3 or len(await claims(aredis, queue)) - len(before) < 2:
        assert time.monotonic() - began < 20, cluster.logs()
        await asyncio.sleep(0.01)
    running = {job: worker for job, worker in (await claims(aredis, queue)).items() if job not in before}
    victim = sorted(set(running.values()))[0]
    queued_at_kill = await aredis.zcard(queue)
    await kill_worker(aredis, cluster, victim, cluster.local)
    killed_at = time.monotonic()
    answers = await asyncio.wait_for(asyncio.gather(*requests), 60)
    seconds = time.monotonic() - killed_at

    failed = [a for a in answers if a.status_code != 200]
    survivor = await live_other(aredis, cluster.keys.workers(LOCAL_WORKER_KIND), victim)
    on_survivor = sum(a.headers.get(WORKER_HEADER) == survivor for a in answers if a.status_code == 200)
    cluster.report(
        f"f) local worker SIGKILLed with 2 generations running and {queued_at_kill} queued for its alias: "
        f"{len(answers) - len(failed)} of {len(answers)} complete ({on_survivor} on the other worker), "
        f"{len(failed)} failed, all answered {seconds:.1f} s after the kill"
    )
    assert queued_at_kill >= 3, queued_at_kill  # there was a queue to move
    assert len(failed) <= 1, ([a.text for a in failed], cluster.logs())
    assert all(a.json()["error"]["code"] == "worker_lost" for a in failed), [a.text for a in failed]
    assert all(a.json()["usage"]["completion_tokens"] >= 900 for a in answers if a.status_code == 200)
    assert on_survivor >= len(answers) - 1  # all but, at most, the one the victim finished before it died


async def live_other(client: Redis, key: str, victim: str) -> str:
    members = await client.zrangebyscore(key, time.time() - HEARTBEAT_TTL * 4, "+inf")
    others: set[str] = {m.decode() for m in members} - {victim}
    assert len(others) == 1, others
    return others.pop()


async def test_d_an_api_replica_killed_fails_only_its_own_streams_and_nginx_sends_new_requests_to_the_other(
    cluster: Cluster, lb: httpx.AsyncClient
) -> None:
    model = await api_model(lb, cluster, Script(chunks=30, delay=0.1))  # 3 s: under way at the kill
    quick = await api_model(lb, cluster, Script(chunks=3))
    firsts = [asyncio.Event() for _ in range(40)]
    streams = [asyncio.ensure_future(read_stream(lb, {"model": model, "messages": MESSAGES}, first=f)) for f in firsts]
    await all_under_way(streams, firsts, cluster)
    cluster.apis[1].kill()  # SIGKILL
    killed_at = time.monotonic()
    ends = await asyncio.wait_for(asyncio.gather(*streams), 30)
    after = await asyncio.gather(
        *(read_stream(lb, {"model": quick, "messages": MESSAGES}) for _ in range(20)),
        *(lb.post("/v1/chat/completions", json={"model": quick, "messages": MESSAGES}) for _ in range(20)),
    )
    seconds = time.monotonic() - killed_at

    on_killed = [e for e in ends if cluster.replica_of(e.upstream) == 1]
    on_other = [e for e in ends if cluster.replica_of(e.upstream) == 0]
    new_streams = [e for e in after if isinstance(e, Ended)]
    new_plain = [r for r in after if isinstance(r, httpx.Response)]
    new_failures = [e for e in new_streams if not e.complete(3)] + [r for r in new_plain if r.status_code != 200]
    cluster.report(
        f"d) API replica SIGKILLed under {len(ends)} streams: {len(on_killed)} on it cut, "
        f"{sum(e.complete(30) for e in on_other)} of {len(on_other)} on the other complete; then "
        f"{len(after) - len(new_failures)} of {len(after)} new requests through nginx succeeded, "
        f"{seconds:.1f} s after the kill"
    )
    assert on_killed, [e.upstream for e in ends]
    assert on_other, [e.upstream for e in ends]
    assert len(on_killed) + len(on_other) == len(ends)
    assert all(e.complete(30) for e in on_other), [e for e in on_other if not e.complete(30)]
    assert not any(e.complete(30) for e in on_killed), on_killed
    assert not new_failures, (new_failures[:5], cluster.nginx.logs())
    assert {cluster.replica_of(e.upstream) for e in new_streams} == {0}
    assert {cluster.replica_of(r.headers.get(UPSTREAM_HEADER)) for r in new_plain} == {0}
