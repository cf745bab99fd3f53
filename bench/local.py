"""Local-model benchmark: ``llama_cpp.Llama`` directly vs. through the gateway vs. llama-cpp-python's own server,
and one local worker vs. two for eight concurrent requests.

Run from the repository root: ``uv run python bench/local.py [--quick]``. See bench/README.md.

It writes a ~100M-parameter random-weight llama GGUF (F16) into bench/.cache/ once, then measures time to first
token and tokens/s of one stream at a time, the targets taking turns over a few rounds: the model called in this
process (``llama_cpp.Llama``, and the local worker's own engine class, to tell the engine from the transport),
the gateway (``bodhi api`` + ``bodhi local-worker`` on a fresh Postgres database and Redis prefix) and
``python -m llama_cpp.server``. Then eight concurrent streams through the gateway, served by one local worker or
by two. It prints a Markdown table and writes it into bench/RESULTS.md (section ``local``). Everything it starts
is stopped and its database dropped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

if __package__:  # imported as `bench.local`: bench/ is not on sys.path
    from bench import common, local_batching
    from bench.local_gateway import ConcurrentRuns, Gateway, concurrent, redis_cpu_seconds
    from bench.local_machine import Watch
    from bench.local_model import (
        MODEL_PATH,
        N_EMBD,
        N_FF,
        N_HEAD,
        N_LAYER,
        ensure_model,
    )
    from bench.local_streams import SEED, Stream, chat_body, stream_http, stream_in_process
else:  # run as a script: bench/ is the script directory
    import common  # puts the repository root on sys.path, for `tests.support`
    import local_batching
    from local_gateway import ConcurrentRuns, Gateway, concurrent, redis_cpu_seconds
    from local_machine import Watch
    from local_model import MODEL_PATH, N_EMBD, N_FF, N_HEAD, N_LAYER, ensure_model
    from local_streams import SEED, Stream, chat_body, stream_http, stream_in_process
from tests.support import tiny_gguf
from tests.support.llama_server import llama_server_command

log = common.logger("local-bench")
fmt = common.fmt

N_CTX = 512
N_THREADS = 2
ALIAS = "bench-local"  # n_threads 2
ALIAS_ONE_THREAD = "bench-local-t1"  # n_threads 1, one worker
ALIAS_TWO_WORKERS = "bench-local-t1x2"  # n_threads 1, two workers
CONCURRENT = 8
STOP_TIMEOUT = 20  # seconds from SIGTERM to SIGKILL for the gateway's processes and the server
MAX_TOKENS_FULL = 128

# Targets of the product issue.
MIN_TPS_RATIO = 0.95  # the gateway within 5% of direct tokens/s, one stream
MIN_SCALING = 1.7  # two workers vs. one, eight concurrent requests

DIRECT, ENGINE, GATEWAY, SERVER = "direct", "direct, worker's engine", "gateway", "llama_cpp.server"
TARGETS = (DIRECT, ENGINE, GATEWAY, SERVER)


@dataclass(frozen=True)
class Plan:
    rounds: int  # of one stream per target
    max_tokens: int
    repeats: int  # of the concurrent requests per setup

    @classmethod
    def of(cls, quick: bool) -> Plan:
        return (
            cls(rounds=2, max_tokens=32, repeats=1) if quick else cls(rounds=8, max_tokens=MAX_TOKENS_FULL, repeats=2)
        )


# ---------------------------------------------------------------- processes


def start_gateway(stack: contextlib.ExitStack, logs: Path) -> Gateway:
    """``bodhi api`` on a fresh database and Redis prefix; a user, a token and the three aliases created."""
    gateway = Gateway(common.start_api(stack, logs, name="bench_local", stop_timeout=STOP_TIMEOUT))
    # One at a time: these measure the path without batching (bench/local_batching.py measures batching against it).
    # (An alias's n_ctx of 512 leaves room for one slot of 512 tokens: models.n_parallel_of.)
    for alias, n_threads in ((ALIAS, N_THREADS), (ALIAS_ONE_THREAD, 1), (ALIAS_TWO_WORKERS, 1)):
        gateway.create_alias(alias, MODEL_PATH, {"n_ctx": N_CTX, "n_threads": n_threads})
    return gateway


def start_llama_server(stack: contextlib.ExitStack, logs: Path) -> tuple[str, common.Child]:
    """``python -m llama_cpp.server`` as users run it, with the alias's context params."""
    port = common.free_port()
    argv = llama_server_command(
        MODEL_PATH, model_alias=ALIAS, port=port, n_ctx=N_CTX, embedding=False, n_threads=N_THREADS
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BODHI_")}
    child = common.Child("llama-server", argv, env=env, logs=logs, stop_timeout=STOP_TIMEOUT)
    stack.callback(child.stop)
    url = f"http://127.0.0.1:{port}"
    common.wait_http(f"{url}/v1/models", child, timeout=120)
    return url, child


# ---------------------------------------------------------------- one stream at a time


@dataclass
class Single:
    """The runs of one target, and the CPU time its processes spent on them."""

    streams: list[Stream] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds over the timed runs

    def median(self, value: Callable[[Stream], float]) -> float:
        return statistics.median(value(stream) for stream in self.streams)


def measure_single(
    plan: Plan, gateway: Gateway, watch: Watch, *, server_url: str, server: common.Child, direct: Any, engine: Any
) -> dict[str, Single]:
    """Every target, one stream at a time, taking turns (the order rotates each round); medians over the rounds."""
    from bodhi_local_worker.generation import Meter, metered

    def run_engine(index: int, max_tokens: int) -> Stream:
        with metered(engine, Meter()):  # as the local worker calls it
            return stream_in_process(engine, index, max_tokens)

    client = httpx.Client(timeout=httpx.Timeout(300, connect=10))
    runs: dict[str, Callable[[int, int], Stream]] = {
        DIRECT: lambda index, max_tokens: stream_in_process(direct, index, max_tokens),
        ENGINE: run_engine,
        GATEWAY: lambda index, max_tokens: stream_http(
            client,
            f"{gateway.url}/v1/chat/completions",
            chat_body(ALIAS, index, max_tokens, usage=True),
            gateway.headers,
        ),
        SERVER: lambda index, max_tokens: stream_http(
            client, f"{server_url}/v1/chat/completions", chat_body(ALIAS, index, max_tokens), {}
        ),
    }
    pids: dict[str, dict[str, Callable[[], float]]] = {
        DIRECT: {"this process": time.process_time},
        ENGINE: {"this process": time.process_time},
        GATEWAY: {
            "api": lambda: common.cpu_seconds([gateway.api.process.popen.pid]),
            "worker": lambda: common.cpu_seconds([gateway.workers[0].popen.pid]),
            "redis": redis_cpu_seconds,
        },
        SERVER: {"server": lambda: common.cpu_seconds([server.popen.pid])},
    }
    out = {name: Single() for name in TARGETS}
    try:
        for name in TARGETS:  # warm-up: the worker loads its model, every target pages the file in
            runs[name](9000, 8).check(8, f"warm-up {name}")
        for round_ in range(plan.rounds):
            order = TARGETS[round_ % len(TARGETS) :] + TARGETS[: round_ % len(TARGETS)]
            for name in order:

                def timed(attempt: int, name: str = name, round_: int = round_) -> tuple[Stream, dict[str, float]]:
                    before = {process: read() for process, read in pids[name].items()}
                    stream = runs[name](10 * round_ + attempt, plan.max_tokens)
                    return stream, {process: read() - before[process] for process, read in pids[name].items()}

                stream, cpu = watch.run(f"round {round_ + 1} {name}", timed)
                for process, seconds in cpu.items():
                    out[name].cpu[process] = out[name].cpu.get(process, 0.0) + seconds
                stream.check(plan.max_tokens, f"round {round_ + 1} {name}")
                out[name].streams.append(stream)
                log(
                    f"round {round_ + 1}/{plan.rounds} {name:<24} ttft {1000 * stream.ttft:7.1f} ms, "
                    f"{stream.tokens_per_s:6.2f} tokens/s, {stream.tokens} tokens"
                )
                for child in (*gateway.processes, server):
                    child.check_alive()
    finally:
        client.close()
    return out


# ---------------------------------------------------------------- concurrent requests, one worker vs. two


@dataclass
class Scaling(ConcurrentRuns):
    """One setup's runs of ``CONCURRENT`` simultaneous streams (each run: its streams and its wall time)."""

    label: str
    alias: str
    workers: int
    runs: list[tuple[list[Stream], float]] = field(default_factory=list)

    def per_worker(self) -> str:
        """Requests per worker in each run, e.g. ``4+4, 5+3``."""
        out = []
        for streams, _ in self.runs:
            counts: dict[str, int] = {}
            for stream in streams:
                counts[stream.worker or "?"] = counts.get(stream.worker or "?", 0) + 1
            out.append("+".join(map(str, sorted(counts.values(), reverse=True))))
        return ", ".join(out)

    def gaps(self) -> list[float]:
        """Per worker, from the end of one answer to the first token of the next: hand-off + prompt processing."""
        gaps = []
        for streams, _ in self.runs:
            by_worker: dict[str, list[Stream]] = {}
            for stream in streams:
                by_worker.setdefault(stream.worker or "?", []).append(stream)
            for served in by_worker.values():
                served.sort(key=lambda stream: stream.first or stream.end)
                gaps += [(nxt.first or nxt.end) - prev.end for prev, nxt in itertools.pairwise(served)]
        return gaps


def warm_workers(gateway: Gateway, alias: str, count: int) -> None:
    """Until each of ``count`` workers has served a request (loaded its model): ``count`` requests at a time."""
    seen: set[str] = set()
    for _ in range(6):
        for stream in concurrent(gateway, alias, count, max_tokens=16, first_index=9100, budget=300):
            stream.check(16, "warm-up")
            seen.add(stream.worker or "?")
        if len(seen) >= count:
            return
    raise RuntimeError(f"only {len(seen)} of {count} workers served the warm-up requests")


def measure_scaling(plan: Plan, gateway: Gateway, watch: Watch) -> list[Scaling]:
    """Eight concurrent streams: one worker (n_threads 2), one worker (n_threads 1), two workers (n_threads 1).

    All the workers run all the time, each setup on an alias of its own (same file, its own context params), so the
    setups can take turns, the order rotating each repetition. The one worker of ``ALIAS`` is the one the single
    streams used; the others serve ``ALIAS_ONE_THREAD`` (one) and ``ALIAS_TWO_WORKERS`` (two). Idle workers only
    heartbeat.
    """
    setups = [
        Scaling("1 worker, n_threads 2", ALIAS, 1),
        Scaling("1 worker, n_threads 1", ALIAS_ONE_THREAD, 1),
        Scaling("2 workers, n_threads 1 each", ALIAS_TWO_WORKERS, 2),
    ]
    for setup in setups[1:]:
        for _ in range(setup.workers):
            gateway.start_worker(setup.alias)
    for setup in setups:
        warm_workers(gateway, setup.alias, setup.workers)
    budget = 60 + 3 * CONCURRENT * plan.max_tokens  # seconds: far beyond 1 token/s
    for repeat in range(plan.repeats):
        for turn in range(len(setups)):
            index = (repeat + turn) % len(setups)
            setup = setups[index]
            label = f"{setup.label} ({repeat + 1}/{plan.repeats})"
            log(f"{label}: {CONCURRENT} concurrent requests of {plan.max_tokens} tokens")
            first_index = 1000 * (repeat + 1) + 100 * index

            streams, wall = watch.streams(
                label,
                gateway,
                setup.alias,
                CONCURRENT,
                max_tokens=plan.max_tokens,
                first_index=first_index,
                budget=budget,
            )
            setup.runs.append((streams, wall))
            tokens = sum(stream.tokens for stream in streams)
            log(f"{label}: {tokens} tokens in {wall:.1f} s = {setup.throughputs[-1]:.2f} tokens/s")
    return setups


# ---------------------------------------------------------------- the same without the gateway


@dataclass
class Reference:
    """``CONCURRENT`` requests split over ``processes`` processes that each call llama.cpp in a loop: no gateway."""

    label: str
    processes: int
    n_threads_batch: int | None  # None: llama-cpp-python's default, the number of CPUs; the worker sets n_threads
    throughput: float = float("nan")


def reference_child(n_threads_batch: int, count: int, max_tokens: int) -> None:
    """``--reference-child``: load the model (n_threads 1), then for each ``GO FIRST_INDEX`` line on stdin run
    ``count`` streams one after the other and print the tokens generated; exit at the end of stdin."""
    import llama_cpp

    extra: dict[str, Any] = {"n_threads_batch": n_threads_batch} if n_threads_batch else {}
    llm = llama_cpp.Llama(str(MODEL_PATH), n_ctx=N_CTX, n_threads=1, verbose=False, **extra)
    stream_in_process(llm, 9200, 4)
    print("READY", flush=True)
    for line in sys.stdin:
        first_index = int(line.split()[1])
        tokens = 0
        for i in range(count):
            stream = stream_in_process(llm, first_index + i, max_tokens)
            stream.check(max_tokens, "reference")
            tokens += stream.tokens
        print(json.dumps({"tokens": tokens}), flush=True)


def _read_line(popen: subprocess.Popen[bytes], timeout: float) -> str:
    assert popen.stdout is not None
    ready, _, _ = select.select([popen.stdout], [], [], timeout)
    line = popen.stdout.readline().decode() if ready else ""
    if not line:
        raise RuntimeError(f"a reference process said nothing within {timeout} s (exit code {popen.poll()})")
    return line


def _start_children(argv: list[str], processes: int) -> list[subprocess.Popen[bytes]]:
    children: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(processes):
            children.append(subprocess.Popen(argv, cwd=common.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        for child in children:
            if _read_line(child, 120).strip() != "READY":
                raise RuntimeError("a reference process did not start")
    except BaseException:
        _stop_children(children)
        raise
    return children


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    """End of stdin: each child exits after its current batch; killed if it does not within 20 s."""
    for child in children:
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


def measure_reference(plan: Plan, watch: Watch) -> list[Reference]:
    """One process vs. two, n_threads 1 each; with llama-cpp-python's default n_threads_batch (the CPUs) and with 1
    (as the worker sets it)."""
    setups = [
        Reference("1 process, n_threads 1", 1, None),
        Reference("2 processes, n_threads 1 each", 2, None),
        Reference("1 process, n_threads 1, n_threads_batch 1", 1, 1),
        Reference("2 processes, n_threads 1 each, n_threads_batch 1", 2, 1),
    ]
    budget = 60 + 3 * CONCURRENT * plan.max_tokens
    for index, setup in enumerate(setups):
        count = CONCURRENT // setup.processes
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--reference-child",
            str(setup.n_threads_batch or 0),
            str(count),
            str(plan.max_tokens),
        ]
        children = _start_children(argv, setup.processes)
        watch.extra = [child.pid for child in children]

        def timed(
            attempt: int,
            children: list[subprocess.Popen[bytes]] = children,
            first: int = 5000 + 100 * index,
            count: int = count,
        ) -> tuple[int, float]:
            started = time.perf_counter()
            for number, child in enumerate(children):
                assert child.stdin is not None
                child.stdin.write(f"GO {first + 20 * attempt + count * number}\n".encode())
                child.stdin.flush()
            tokens = sum(json.loads(_read_line(child, budget))["tokens"] for child in children)
            return tokens, time.perf_counter() - started

        label = f"without the gateway, {setup.label}"
        log(f"{label}: {CONCURRENT} requests of {plan.max_tokens} tokens")
        try:
            tokens, wall = watch.run(label, timed)
        finally:
            watch.extra = []
            _stop_children(children)
        if tokens != CONCURRENT * plan.max_tokens:
            raise RuntimeError(f"{label}: {tokens} tokens, expected {CONCURRENT * plan.max_tokens}")
        setup.throughput = tokens / wall
        log(f"{label}: {tokens} tokens in {wall:.1f} s = {setup.throughput:.2f} tokens/s")
    return setups


# ---------------------------------------------------------------- report


def single_table(single: dict[str, Single], plan: Plan) -> str:
    rows = [
        "| target | TTFT p50 (ms) | tokens/s p50 | tokens/s min-max | tokens/request | CPU s/request |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in TARGETS:
        s = single[name]
        rates = [stream.tokens_per_s for stream in s.streams]
        cpu = ", ".join(f"{process} {seconds / len(s.streams):.2f}" for process, seconds in s.cpu.items())
        rows.append(
            f"| {name} | {fmt(1000 * s.median(lambda x: x.ttft), 0)} | {fmt(s.median(lambda x: x.tokens_per_s))} "
            f"| {fmt(min(rates))}-{fmt(max(rates))} | {s.median(lambda x: x.tokens):.0f} of {plan.max_tokens} "
            f"| {cpu} |"
        )
    return "\n".join(rows)


def scaling_table(scaling: list[Scaling]) -> str:
    rows = [
        "| setup | runs | tokens/run | tokens/s p50 | tokens/s of each run | TTFT p50 (ms) | TTFT max (ms) "
        "| next answer's first token after the previous one ended, p50 (ms) | requests per worker, each run |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for s in scaling:
        ttfts = [1000 * stream.ttft for stream in s.streams]
        gaps = s.gaps()
        rows.append(
            f"| {s.label} | {len(s.runs)} | {sum(x.tokens for x in s.runs[0][0])} | {s.throughput:.2f} "
            f"| {', '.join(f'{x:.2f}' for x in s.throughputs)} | {statistics.median(ttfts):.0f} | {max(ttfts):.0f} "
            f"| {fmt(1000 * statistics.median(gaps), 0) if gaps else 'n/a'} | {s.per_worker()} |"
        )
    return "\n".join(rows)


def reference_table(reference: list[Reference]) -> str:
    rows = ["| setup (no gateway) | tokens/s |", "|---|---:|"]
    rows += [f"| {r.label} | {fmt(r.throughput)} |" for r in reference]
    return "\n".join(rows)


def met(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def _rates(single: dict[str, Single]) -> dict[str, float]:
    return {name: single[name].median(lambda x: x.tokens_per_s) for name in TARGETS}


def verdicts(single: dict[str, Single], scaling: list[Scaling], reference: list[Reference]) -> list[str]:
    rate = _rates(single)
    ttft = {name: 1000 * single[name].median(lambda x: x.ttft) for name in TARGETS}
    gateway_ratio = rate[GATEWAY] / rate[DIRECT]
    two, one_t1, one_t2 = scaling[2].throughput, scaling[1].throughput, scaling[0].throughput
    ref = [r.throughput for r in reference]
    return [
        f"- One stream, gateway / direct tokens/s: {fmt(rate[GATEWAY])} / {fmt(rate[DIRECT])} = "
        f"{fmt(gateway_ratio, 3)} (target >= {MIN_TPS_RATIO:g}): {met(gateway_ratio >= MIN_TPS_RATIO)}. "
        f"For comparison, the worker's engine in this process: {fmt(rate[ENGINE] / rate[DIRECT], 3)}; "
        f"llama_cpp.server: {fmt(rate[SERVER] / rate[DIRECT], 3)}.",
        f"- Time to first token, p50: direct {fmt(ttft[DIRECT], 0)} ms, gateway {fmt(ttft[GATEWAY], 0)} ms "
        f"({ttft[GATEWAY] - ttft[DIRECT]:+.0f} ms), llama_cpp.server {fmt(ttft[SERVER], 0)} ms "
        f"({ttft[SERVER] - ttft[DIRECT]:+.0f} ms).",
        f"- {CONCURRENT} concurrent requests, two workers (n_threads 1 each) / one worker (n_threads 1): {fmt(two)} / "
        f"{fmt(one_t1)} = {fmt(two / one_t1)}x (target >= {MIN_SCALING:g}x): {met(two / one_t1 >= MIN_SCALING)}.",
        f"- The same two workers / one worker using both cores (n_threads 2): {fmt(two)} / {fmt(one_t2)} = "
        f"{fmt(two / one_t2)}x (target >= {MIN_SCALING:g}x): {met(two / one_t2 >= MIN_SCALING)}.",
        f"- Without the gateway, two processes / one (n_threads 1 each): {fmt(ref[1] / ref[0])}x; with "
        f"n_threads_batch 1 as well: {fmt(ref[3] / ref[2])}x: what this machine and llama.cpp allow any gateway.",
    ]


def explanations(single: dict[str, Single], scaling: list[Scaling], reference: list[Reference]) -> list[str]:
    """What the numbers say where a target is missed, or nearly."""
    rate = _rates(single)
    two, one_t1, one_t2 = scaling[2].throughput, scaling[1].throughput, scaling[0].throughput
    ref = [r.throughput for r in reference]
    lines = []
    gateway_ratio, engine_ratio = rate[GATEWAY] / rate[DIRECT], rate[ENGINE] / rate[DIRECT]
    if gateway_ratio < MIN_TPS_RATIO:
        lines.append(
            f"- One stream: the worker's engine alone, in this process, runs at {fmt(100 * engine_ratio, 1)}% of "
            f"direct, the whole gateway at {fmt(100 * gateway_ratio, 1)}%. The first is the cost of how the worker "
            "loads and calls the model (`embedding=True`, with which llama-cpp-python creates the context with "
            "`n_seq_max` = min(n_batch, the maximum) and a unified KV cache; the `MeteredLlama.generate` wrapper); "
            "the rest is the path around it (a chunk handed from the generating thread to the event loop, JSON, "
            "a Redis PUBLISH, the API's relay, SSE, the client), whose CPU time, on two cores, is taken from "
            "llama.cpp's two threads: see the CPU column."
        )
    if two / one_t2 < MIN_SCALING:
        lines.append(
            f"- Two workers against one worker using both cores ({fmt(two / one_t2)}x): this machine has "
            f"{os.cpu_count()} cores, and two workers with one thread each use the same two cores as one worker "
            "with two threads. They can only win what llama.cpp loses to threading: one worker gets "
            f"{fmt(one_t2 / one_t1)}x from its second thread, two workers {fmt(two / one_t1)}x from a second "
            "process. The two generations also share the memory bandwidth (each reads all ~200 MB of weights per "
            "token) and the cores with the API, Redis, the client and the workers' event loops. 1.7x over the best "
            "single worker needs hardware per worker: a GPU each (what `bodhi local-worker --gpu N` is for) or "
            f"cores of its own. The dispatch did spread the requests evenly ({scaling[2].per_worker()})."
        )
    if two / one_t1 < MIN_SCALING:
        lines.append(
            f"- Two workers against one with the same thread count ({fmt(two / one_t1)}x): each worker has a core "
            "of its own, but shares it with the API, Redis, the client and the event loops, and the two share the "
            "memory bandwidth. Without the gateway two such processes get "
            f"{fmt(ref[3] / ref[2])}x (n_threads_batch 1, as the worker) and {fmt(ref[1] / ref[0])}x with "
            "llama-cpp-python's default `n_threads_batch`."
        )
    return lines


def findings(scaling: list[Scaling], single: dict[str, Single], reference: list[Reference]) -> list[str]:
    """The gateway's local path, as seen from these runs."""
    gaps = scaling[0].gaps()
    gap = 1000 * statistics.median(gaps) if gaps else float("nan")
    ttft = 1000 * single[DIRECT].median(lambda x: x.ttft)
    longest_wait = max((stream.ttft for setup in scaling for streams, _ in setup.runs for stream in streams), default=0)
    return [
        f"- Queued requests wait for their turn: with the API's default timeouts (`BODHI_PICKUP_TIMEOUT` 10 s, "
        f"`BODHI_QUEUE_TIMEOUT` 600 s), every one of the {CONCURRENT} concurrent requests to one worker was served; "
        f"the last waited {fmt(longest_wait, 1)} s for its first token. A request fails with 503 only when no worker "
        "of its queue has taken or run a job for the pickup timeout, or after the queue timeout.",
        "- A worker's thread budget covers prompt processing: `n_threads_batch` follows the alias's `n_threads`. "
        "Without the gateway, two one-thread processes get "
        f"{fmt(reference[1].throughput / reference[0].throughput)}x one process with llama-cpp-python's default "
        f"(`n_threads_batch` = the number of CPUs) and {fmt(reference[3].throughput / reference[2].throughput)}x "
        "with `n_threads_batch` 1, as the worker sets it.",
        f"- Hand-off between queued jobs: with one worker (n_threads 2), the next answer's first token came "
        f"{fmt(gap, 0)} ms (p50) after the previous answer ended, against a time to first token of {fmt(ttft, 0)} ms "
        "for one stream on an idle model: "
        + (
            "the gap is prompt processing; the hand-off costs nothing measurable."
            if gap - ttft < 50
            else f"{fmt(gap - ttft, 0)} ms more than prompt processing alone."
        ),
        "- The model as the worker loads it (`embedding=True`, `MeteredLlama`) generates as fast as a plain "
        "`Llama` within the noise of these runs (compare the first two rows of the first table).",
    ]


def machine() -> list[str]:
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 2**20:.0f} GiB"
    import llama_cpp

    return common.machine(cpus=f", {memory} RAM, no GPU used", python=f", llama-cpp-python {llama_cpp.__version__}")


def report(
    single: dict[str, Single],
    scaling: list[Scaling],
    reference: list[Reference],
    *,
    plan: Plan,
    this_run: common.Run,
    params: int,
    watch: Watch,
) -> str:
    load_after = common.load_average()
    prompt_tokens = single[GATEWAY].streams[0].prompt_tokens
    return "\n".join(
        [
            "# Local-model benchmark results",
            "",
            this_run.command_line(),
            "",
            f"- Machine: {'; '.join(machine())}; load average before the run {this_run.load_before}, "
            f"after {load_after}",
            f"- Other work on the machine while measuring: {watch.summary()}",
            f"- Model: {MODEL_PATH.name}, random weights, llama architecture ({N_LAYER} layers, n_embd {N_EMBD}, "
            f"{N_HEAD} heads, n_ff {N_FF}, byte vocabulary of {tiny_gguf.N_VOCAB} tokens), F16: "
            f"{params / 1e6:.1f}M parameters, {MODEL_PATH.stat().st_size / 1e6:.0f} MB",
            f"- Every request: a chat completion, streamed, `max_tokens` {plan.max_tokens}, temperature 0, seed "
            f"{SEED}, n_ctx {N_CTX}; a different prompt each ({prompt_tokens} prompt tokens after the chat "
            "template; the vocabulary is bytes, a space costs three), the same prompts for every target. "
            "The model can only emit one-character tokens and never end-of-generation, so every answer is exactly "
            "`max_tokens` tokens "
            "(checked: text length, `finish_reason` `length`, and the gateway's usage).",
            "",
            "## One stream at a time",
            "",
            f"Each target alone on the machine, taking turns, {plan.rounds} rounds after a warm-up; medians. "
            "TTFT: from sending the request to the first chunk with content; tokens/s: tokens after the first chunk "
            "/ time from the first to the last chunk with content. CPU s/request: CPU time of each process over the "
            "timed requests, divided by their number (Redis: the server's whole CPU time meanwhile).",
            "",
            f"- direct: `llama_cpp.Llama(path, n_ctx={N_CTX}, n_threads={N_THREADS}, verbose=False)` in this process, "
            "`create_chat_completion(stream=True)`",
            "- direct, worker's engine: the same, but the model loaded and called as the local worker does it "
            f"(`bodhi_local_worker.engine.load(path, n_ctx={N_CTX}, n_threads={N_THREADS})`: `MeteredLlama`, "
            "`embedding=True`; `generation.metered`), in this process: the engine without the transport",
            f"- gateway: `bodhi api` + one `bodhi local-worker --models {ALIAS}` (alias context_params "
            f"n_ctx {N_CTX}, n_threads {N_THREADS}), Postgres and Redis on loopback, `BODHI_LOG_LEVEL=WARNING`; "
            "httpx client",
            f"- llama_cpp.server: `python -m llama_cpp.server --model ... --n_ctx {N_CTX} --n_threads {N_THREADS}`; "
            "httpx client",
            "",
            single_table(single, plan),
            "",
            f"## {CONCURRENT} concurrent requests: one local worker vs. two",
            "",
            f"{CONCURRENT} streams sent at once through the gateway; tokens/s = all tokens / wall time until the last "
            "ended. A local worker runs one generation at a time, so the others wait in the alias's queue (the API "
            "with its default timeouts: a request waits for its turn while the queue is active). Thread counts come "
            "from the alias (context_params), so each setup has an alias of its own "
            f"on the same file: `{ALIAS}` (n_threads 2), `{ALIAS_ONE_THREAD}` and `{ALIAS_TWO_WORKERS}` (n_threads "
            "1); all the workers run throughout (idle ones only heartbeat), and the setups take turns. "
            "Each worker processes prompts with as many threads as it generates with (`n_threads_batch` follows the "
            "alias's `n_threads`: `bodhi_local_worker.engine.load`).",
            "",
            scaling_table(scaling),
            "",
            "The same without the gateway: the requests split over one or two processes that each call llama.cpp "
            "(`Llama(n_threads=1)`, `n_threads_batch` llama-cpp-python's default, the number of CPUs, or 1 as the "
            "worker sets it) one request after the other.",
            "",
            reference_table(reference),
            "",
            "## Targets",
            "",
            *verdicts(single, scaling, reference),
            "",
            *(["## Why", "", *why, ""] if (why := explanations(single, scaling, reference)) else []),
            "## The gateway's local path",
            "",
            *findings(scaling, single, reference),
            "",
        ]
    )


# ---------------------------------------------------------------- main


def run(quick: bool) -> int:
    this_run = common.Run("local.py", quick, log)
    plan = Plan.of(quick)
    params = ensure_model()
    with this_run.scope("bodhi-local-bench-") as (stack, logs):
        try:
            import llama_cpp

            from bodhi_local_worker import engine as worker_engine

            direct = llama_cpp.Llama(str(MODEL_PATH), n_ctx=N_CTX, n_threads=N_THREADS, verbose=False)
            stack.callback(direct.close)
            engine = worker_engine.load(str(MODEL_PATH), n_ctx=N_CTX, n_threads=N_THREADS)
            stack.callback(engine.close)
            gateway = start_gateway(stack, logs)
            gateway.start_worker(ALIAS)
            log(f"gateway on {gateway.url}, one local worker")
            server_url, server = start_llama_server(stack, logs)
            log(f"llama_cpp.server on {server_url}")
            watch = Watch(lambda: [os.getpid(), *(child.popen.pid for child in (*gateway.processes, server))])
            single = measure_single(
                plan, gateway, watch, server_url=server_url, server=server, direct=direct, engine=engine
            )
            server.stop()  # not needed any more
            scaling = measure_scaling(plan, gateway, watch)
            reference = measure_reference(plan, watch)
        except BaseException:
            kept = common.keep_logs(logs, "bodhi-local-bench-logs-")
            log(f"the processes' logs are kept in {kept}")
            raise
        text = report(
            single,
            scaling,
            reference,
            plan=plan,
            this_run=this_run,
            params=params,
            watch=watch,
        )
    common.publish("local", text, note="(written to bench/RESULTS.md, section local)")
    return 0


def main() -> None:
    parser = common.arguments(__doc__, quick="32-token answers, 2 rounds, 1 repetition")
    parser.add_argument(
        "--batching", action="store_true", help="only continuous batching against one at a time (local_batching.py)"
    )
    parser.add_argument("--reference-child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_child:
        reference_child(*args.reference_child)
        return
    common.exit_with(lambda: local_batching.run(args.quick) if args.batching else run(args.quick), log)


if __name__ == "__main__":
    main()
