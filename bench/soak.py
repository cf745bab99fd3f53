"""Soak: mixed traffic at steady concurrency for minutes, then what it left behind.

The gateway as users run it (`bodhi api`, `bodhi remote-worker`, `bodhi local-worker`) on a fresh database and a
Redis of its own, in front of bench/fake_upstream.py (an API model) and a tiny generated GGUF (a local alias).
``--concurrency`` clients loop for ``--minutes``: streamed and plain API-model chats, and streamed local chats.
The report: requests and failures by kind, the resident memory of every process after the warm-up and at the
end (growth must stay under 10%), and the Redis keys left once traffic stopped (none may belong to a request).

Run: ``uv run python bench/soak.py [--minutes 10] [--concurrency 8]``; ``--quick`` is one minute. It writes its
table into bench/RESULTS.md (section ``soak``). Not part of CI: it takes minutes by design.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import common
import httpx
from common import Child, arguments, exit_with, fmt, logger, machine, publish
from run import UPSTREAM_KEY, start_upstream

from tests.support.redis_process import RestartableRedis
from tests.support.tiny_gguf import write_tiny_llama_gguf

log = logger("soak")
API_MODEL, LOCAL_ALIAS = "soak-api", "soak-local"
# (kind, weight): most traffic is API models, as on a team gateway; a local model answers one at a time.
MIX = (("api-stream", 6), ("api-plain", 3), ("local-stream", 1))
WARM_UP_FRACTION = 0.1
SAMPLE_EVERY_S = 5.0
GROWTH_LIMIT = 0.10
# Keys a gateway keeps while it runs (workers, their heartbeats, the catalogue): not left by requests.
STANDING_KEYS = re.compile(
    r":(workers:\w+|worker:.+|alias-workers:.+|local-aliases|local-followers|queue:.+:active-at|health-check.*)$"
)


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def failed(self, kind: str, why: str) -> None:
        self.failures[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {why[:200]}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def one_request(http: httpx.AsyncClient, kind: str, tally: Tally) -> None:
    model = LOCAL_ALIAS if kind.startswith("local") else API_MODEL
    stream = kind.endswith("stream")
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, "stream": stream}
    tally.requests[kind] += 1
    try:
        if not stream:
            answer = await http.post("/v1/chat/completions", json=body)
            if answer.status_code != 200 or "choices" not in answer.json():
                tally.failed(kind, f"HTTP {answer.status_code} {answer.text}")
            return
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                tally.failed(kind, f"HTTP {response.status_code} {(await response.aread()).decode()}")
                return
            lines = [line async for line in response.aiter_lines() if line.startswith("data:")]
        if not lines or lines[-1] != "data: [DONE]" or any('"error"' in line for line in lines):
            tally.failed(kind, f"stream ended with {lines[-2:]}")
    except httpx.HTTPError as exc:
        tally.failed(kind, f"{type(exc).__name__}: {exc}")


async def client_loop(http: httpx.AsyncClient, index: int, until: float, tally: Tally) -> None:
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    turn = index
    while time.monotonic() < until:
        await one_request(http, kinds[turn % len(kinds)], tally)
        turn += 1


async def traffic(url: str, headers: dict[str, str], *, seconds: float, concurrency: int, processes: dict[str, int]):
    tally = Tally()
    samples: list[tuple[float, dict[str, int]]] = []
    started = time.monotonic()
    until = started + seconds
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
        clients = [asyncio.ensure_future(client_loop(http, i, until, tally)) for i in range(concurrency)]
        while not all(c.done() for c in clients):
            samples.append((time.monotonic() - started, {name: rss_kib(pid) for name, pid in processes.items()}))
            await asyncio.wait(clients, timeout=SAMPLE_EVERY_S)
        await asyncio.gather(*clients)
    samples.append((time.monotonic() - started, {name: rss_kib(pid) for name, pid in processes.items()}))
    return tally, samples


def leftover_keys(redis_url: str, prefix: str) -> tuple[list[str], list[str]]:
    """Keys of this gateway's namespace that a finished request left, and arq's own keys (outside it)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        ours = [k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        arq = [k.decode() for k in client.scan_iter(match="arq:*", count=1000)]
    finally:
        client.close()
    return sorted(k for k in ours if not STANDING_KEYS.search(k)), sorted(arq)


def report(
    tally: Tally,
    samples: list[tuple[float, dict[str, int]]],
    keys: tuple[list[str], list[str]],
    *,
    minutes: float,
    concurrency: int,
    this_run: common.Run,
) -> tuple[str, bool]:
    warm_at = minutes * 60 * WARM_UP_FRACTION
    warm = next(rss for at, rss in samples if at >= warm_at)
    end = samples[-1][1]
    lines = [
        f"{this_run.command_line()}",
        "",
        *machine(),
        "",
        f"{concurrency} clients for {minutes:g} min, mix {', '.join(f'{k} {w}' for k, w in MIX)} (weights).",
        "",
        "| kind | requests | failed |",
        "|---|---:|---:|",
        *(f"| {kind} | {tally.requests[kind]} | {tally.failures[kind]} |" for kind, _ in MIX),
        "",
        f"| process | RSS after warm-up ({warm_at:.0f} s), MiB | RSS at the end, MiB | growth |",
        "|---|---:|---:|---:|",
    ]
    grown = {name: (end[name] - warm[name]) / warm[name] for name in end if warm.get(name)}
    lines += [
        f"| {name} | {fmt(warm[name] / 1024, 1)} | {fmt(end[name] / 1024, 1)} | {grown[name] * 100:+.1f}% |"
        for name in end
    ]
    left, arq = keys
    lines += ["", f"Redis keys left by requests once traffic stopped: {len(left)} {left[:10]}; arq's keys: {len(arq)}."]
    if tally.examples:
        lines += ["", "First failures: " + "; ".join(tally.examples)]
    ok = not sum(tally.failures.values()) and all(g < GROWTH_LIMIT for g in grown.values()) and not left and not arq
    lines += ["", f"Verdict: **{'passed' if ok else 'FAILED'}** (zero failures, growth under 10%, no keys left)."]
    return "\n".join(lines), ok


def run(minutes: float, concurrency: int, quick: bool) -> int:
    this_run = common.Run("soak.py", quick, log)
    with this_run.scope("bodhi-soak-") as (stack, logs):
        redis_server = RestartableRedis(logs / "redis.log")  # its own: nothing else's keys or load in the count
        redis_server.start()
        stack.callback(redis_server.stop)
        common.REDIS_URL = redis_server.url  # start_api reads it
        upstream = start_upstream(stack, logs)
        api = common.start_api(stack, logs, name="bench_soak")
        model = write_tiny_llama_gguf(logs / "soak.gguf")
        api.create(
            "/bodhi/v1/models/api",
            {"name": "soak", "base_url": f"{upstream.url}/v1", "api_key": UPSTREAM_KEY, "models": [API_MODEL]},
            what="registering the API model",
        )
        api.create("/bodhi/v1/models/alias", {"alias": LOCAL_ALIAS, "path": str(model)}, what="creating the alias")
        remote = api.start_worker("remote-worker", "remote-worker", kind="remote")
        local = api.start_worker("local-worker", "local-worker", "--models", LOCAL_ALIAS, kind="local")
        processes: dict[str, Child] = {"api": api.process, "remote worker": remote, "local worker": local}
        log(f"traffic for {minutes:g} min at concurrency {concurrency}")
        tally, samples = asyncio.run(
            traffic(
                api.url,
                api.headers,
                seconds=minutes * 60,
                concurrency=concurrency,
                processes={name: child.popen.pid for name, child in processes.items()},
            )
        )
        time.sleep(3)  # requests' own keys expire or are deleted as they end
        keys = leftover_keys(redis_server.url, api.env["BODHI_REDIS_PREFIX"])
        for child in processes.values():
            child.check_alive()
        text, ok = report(tally, samples, keys, minutes=minutes, concurrency=concurrency, this_run=this_run)
    publish("soak", text, note="(written to bench/RESULTS.md)")
    return 0 if ok else 1


def main() -> None:
    parser = arguments(__doc__, quick="one minute instead of ten")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    exit_with(lambda: run(1.0 if args.quick else args.minutes, args.concurrency, args.quick), log)


if __name__ == "__main__":
    main()
