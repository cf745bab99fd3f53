"""Bodhi's benchmark: the upstream directly vs. through the gateway (with and without a token's rate limits and
budget) vs. through the LiteLLM proxy.

Run from the repository root: ``uv run python bench/run.py [--quick]``. See bench/README.md.

It installs ``litellm[proxy]`` into ``bench/.venv-litellm`` (once), starts a fast fake upstream
(bench/fake_upstream.py), the gateway as users run it (``bodhi api`` + ``bodhi remote-worker`` on a fresh
Postgres database and Redis prefix) and the LiteLLM proxy (one worker) on loopback, drives them with
bench/load.py, interleaved per concurrency level, then prints a Markdown table and writes bench/RESULTS.md. The
gateway is measured twice side by side: with an unlimited token (``gateway``) and with a token that has every
limit configured (``limited``: RPM, TPM, a monthly budget and a model grant, none of them reached), which is what
governance costs a request.
Everything it starts is stopped and its database dropped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import (
    BENCH,
    ROOT,
    Child,
    Run,
    arguments,
    cpu_seconds,
    exit_with,
    fmt,
    free_port,
    keep_logs,
    load_average,
    logger,
    machine,
    publish,
    start_api,
    wait_http,
)

log = logger("bench")
LITELLM_VENV = BENCH / ".venv-litellm"
LITELLM_BIN = LITELLM_VENV / "bin" / "litellm"
RESULTS = BENCH / "RESULTS.md"
MODEL = "bench-model"
UPSTREAM_KEY = "sk-bench"
LITELLM_MASTER_KEY = "sk-litellm-bench-master"
LONG_CHUNKS = 20_000
MAX_RESTARTS = 2  # of the LiteLLM proxy, should it crash (1.108.7 segfaulted once under load here)
CONCURRENCY = (1, 16, 64)
TARGETS = ("direct", "gateway", "limited", "litellm")
LONG_TARGETS = ("direct", "gateway", "litellm")  # limits are checked once per request, not per chunk
# The limited token's limits: configured (each request checks and charges them) but never reached.
LIMITS = {
    "rpm_limit": 1_000_000_000,
    "tpm_limit": 1_000_000_000,
    "budget_tokens": 10**15,
    "budget_period": "month",
    "allowed_models": ["bench-*"],
}

# Targets of the product issue.
MAX_ADDED_TTFT_MS = 3.0
MIN_RPS_RATIO = 5.0
MIN_CHUNKS_PER_S = 20_000
MAX_LIMITS_COST = 0.05  # limits configured: TTFT at c=1 and requests/s at c=16 within 5% of the unlimited token's


@dataclass(frozen=True)
class Plan:
    """Timed requests per cell (split over ``rounds``) and warm-up requests, by concurrency; long streams."""

    requests: dict[int, int]
    warmup: dict[int, int]
    rounds: int
    long_repeat: int

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(requests={1: 50, 16: 200, 64: 200}, warmup={1: 10, 16: 32, 64: 64}, rounds=2, long_repeat=1)
        return cls(requests={1: 300, 16: 1200, 64: 1200}, warmup={1: 20, 16: 100, 64: 128}, rounds=3, long_repeat=3)


@dataclass
class Target:
    name: str
    url: str
    token: str = ""
    children: tuple[Child, ...] = ()  # the target's own processes (CPU accounting, liveness)
    restart: Callable[[], Target] | None = None  # start a replacement, for a target that may crash (LiteLLM)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(child.popen.pid for child in self.children)


# ---------------------------------------------------------------- LiteLLM's own virtual environment


def ensure_litellm() -> str:
    """Create bench/.venv-litellm with ``litellm[proxy]`` unless it is there; return litellm's version."""
    if not LITELLM_BIN.exists():
        log(f"installing litellm[proxy] into {LITELLM_VENV.relative_to(ROOT)} (once; a minute or two)")
        uv = shutil.which("uv")
        python = LITELLM_VENV / "bin" / "python"
        if uv:
            subprocess.run(
                [uv, "venv", "-q", "--clear", "--python", sys.executable, str(LITELLM_VENV)], check=True, timeout=300
            )
            install = [uv, "pip", "install", "-q", "--python", str(python), "litellm[proxy]"]
        else:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)], check=True, timeout=300)
            install = [str(python), "-m", "pip", "install", "-q", "litellm[proxy]"]
        subprocess.run(install, check=True, timeout=1800)
        if not LITELLM_BIN.exists():
            raise RuntimeError(f"litellm[proxy] installed but {LITELLM_BIN} is missing")
    done = subprocess.run(
        [str(LITELLM_VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


# ---------------------------------------------------------------- processes


def start_upstream(stack: contextlib.ExitStack, logs: Path) -> Target:
    child = Child(
        "fake-upstream",
        [sys.executable, str(BENCH / "fake_upstream.py"), "--port", "0"],
        env=dict(os.environ),
        logs=logs,
        stdout_pipe=True,
    )
    stack.callback(child.stop)
    line = child.read_line(timeout=30)
    if not line.startswith("PORT "):
        raise RuntimeError(f"fake upstream said {line!r}:\n{child.log_tail()}")
    url = f"http://127.0.0.1:{int(line.split()[1])}"
    wait_http(f"{url}/v1/models", child, timeout=10)
    return Target("direct", url, children=(child,))


# ---------------------------------------------------------------- the gateway


def start_gateway(stack: contextlib.ExitStack, logs: Path, upstream: Target) -> Target:
    """``bodhi api`` + ``bodhi remote-worker`` on a fresh database and Redis prefix, an API model registered."""
    api = start_api(stack, logs, name="bench")
    worker = api.start_worker("bodhi-remote-worker", "remote-worker", kind="remote")
    api.create(
        "/bodhi/v1/models/api",
        {"name": "bench upstream", "base_url": f"{upstream.url}/v1", "api_key": UPSTREAM_KEY, "models": [MODEL]},
        what="registering the API model",
    )
    return Target("gateway", api.url, api.token, children=(api.process, worker))


def limited(gateway: Target) -> Target:
    """The same gateway with a token whose limits (``LIMITS``) are all configured."""
    created = httpx.post(
        f"{gateway.url}/bodhi/v1/tokens",
        json={"name": "bench limited", **LIMITS},
        headers={"Authorization": f"Bearer {gateway.token}"},
        timeout=30,
    )
    if created.status_code != 201:
        raise RuntimeError(f"creating the limited token failed: {created.status_code} {created.text}")
    return Target("limited", gateway.url, created.json()["token"], children=gateway.children)


# ---------------------------------------------------------------- LiteLLM


LITELLM_CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {api_base}
      api_key: {api_key}
litellm_settings:
  set_verbose: false
  json_logs: false
general_settings:
  master_key: {master_key}
  disable_spend_logs: true
  disable_error_logs: true
"""


def start_litellm(stack: contextlib.ExitStack, logs: Path, upstream: Target, attempt: int = 0) -> Target:
    config = logs / "litellm-config.yaml"
    config.write_text(
        LITELLM_CONFIG.format(
            model=MODEL, api_base=f"{upstream.url}/v1", api_key=UPSTREAM_KEY, master_key=LITELLM_MASTER_KEY
        )
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH")}
    env |= {
        "LITELLM_LOG": "WARNING",  # like the gateway's BODHI_LOG_LEVEL=WARNING: no access log
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # this machine has no internet: don't fetch the cost map
        "LITELLM_TELEMETRY": "False",
        "ANONYMIZED_TELEMETRY": "False",
        "NO_DOCS": "True",
    }
    argv = [str(LITELLM_BIN), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    child = Child("litellm" if not attempt else f"litellm-restart{attempt}", argv, env=env, logs=logs)
    stack.callback(child.stop)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health/liveliness", child, timeout=240)
    return Target(
        "litellm",
        base,
        LITELLM_MASTER_KEY,
        children=(child,),
        restart=None if attempt >= MAX_RESTARTS else lambda: start_litellm(stack, logs, upstream, attempt + 1),
    )


# ---------------------------------------------------------------- load


def run_load(target: Target, args: list[str], *, timeout: float) -> dict[str, Any]:
    argv = [sys.executable, str(BENCH / "load.py"), "--url", target.url, "--token", target.token, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"load.py against {target.name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def check_target(target: Target) -> None:
    """One small streamed request must work before the target is measured."""
    result = run_load(target, ["--concurrency", "1", "--requests", "2", "--warmup", "1", "--timeout", "30"], timeout=90)
    if result["errors"] or result["requests"] != 2:
        raise RuntimeError(f"{target.name} does not stream correctly: {result['error_samples']}")


def upstream_stats(upstream: Target) -> dict[str, int]:
    """Connections the fake upstream has accepted and requests it has answered (this call included)."""
    stats: dict[str, int] = httpx.get(f"{upstream.url}/bench/stats", timeout=10).json()
    return stats


def dead_children(target: Target) -> list[Child]:
    return [child for child in target.children if child.popen.poll() is not None]


def run_cell(
    targets: dict[str, Target], name: str, args: list[str], *, label: str, notes: list[str], timeout: float
) -> dict[str, Any]:
    """One cell; if the target's process died in it, note that, restart it once if it can be, and measure again."""
    for attempt in range(2):
        target = targets[name]
        before, cpu_before = upstream_stats(targets["direct"]), cpu_seconds(target.pids, descendants=True)
        cell = run_load(target, args, timeout=timeout)
        after, cpu_after = upstream_stats(targets["direct"]), cpu_seconds(target.pids, descendants=True)
        cell["served"] = served = after["requests"] - before["requests"] - 1  # not the stats request itself
        cell["target_cpu_s"] = cpu_after - cpu_before
        cell["upstream_conns"] = after["connections"] - before["connections"] - 1
        cell["cpu_ms_per_req"] = 1000 * cell["target_cpu_s"] / served if served > 0 else math.nan
        cell["upstream_conns_per_req"] = cell["upstream_conns"] / served if served > 0 else math.nan
        if cell["errors"]:
            log(f"{label} {name}: {cell['errors']} failed requests, e.g. {cell['error_samples'][:2]}")
        dead = dead_children(target)
        if not dead:
            return cell
        for child in dead:
            tail = child.log_tail(3000)
            log(f"{child.name} exited with {child.popen.returncode} during {label}; its log ends:\n{tail}")
        died = ", ".join(f"`{child.name}` exited with {child.popen.returncode}" for child in dead)
        if target.restart is None or attempt:
            notes.append(f"{label}: {died}; the cell counts what was served before.")
            return cell
        notes.append(f"{label}: {died} ({cell['errors']} failed requests); restarted, the cell measured again.")
        targets[name] = target.restart()
        log(f"{name} restarted on {targets[name].url}")
        check_target(targets[name])
    return cell


def measure(targets: dict[str, Target], plan: Plan, notes: list[str]) -> dict[tuple[int, str], dict[str, Any]]:
    """Every concurrency level for every target, in rounds: within a level the targets take turns, round after
    round, the order rotating, so that noise on the machine is spread over all three alike."""
    cells: dict[tuple[int, str], dict[str, Any]] = {}
    for concurrency in CONCURRENCY:
        parts: dict[str, list[dict[str, Any]]] = {name: [] for name in TARGETS}
        per_round = max(1, plan.requests[concurrency] // plan.rounds)
        for round_no in range(plan.rounds):
            shift = (round_no + concurrency) % len(TARGETS)
            for name in TARGETS[shift:] + TARGETS[:shift]:
                warmup = plan.warmup[concurrency] if round_no == 0 else concurrency
                args = ["--concurrency", str(concurrency), "--requests", str(per_round), "--warmup", str(warmup)]
                label = f"c={concurrency} round {round_no + 1}/{plan.rounds}"
                part = run_cell(
                    targets, name, [*args, "--budget", "150", "--raw"], label=label, notes=notes, timeout=400
                )
                log(
                    f"{label:<16} {name:<8} ttft p50 {part['ttft_p50_ms']:.2f} ms, {part['rps']:.0f} req/s, "
                    f"{part['errors']} errors"
                )
                parts[name].append(part)
        for name in TARGETS:
            cells[concurrency, name] = merge(parts[name])
    return cells


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell from its rounds: all requests' timings pooled; rates over the rounds' summed times."""

    def total(key: str) -> float:
        return float(sum(part[key] for part in parts))

    def pooled(key: str) -> list[float]:
        return [x for part in parts for x in part["raw_ms"][key]]

    served = total("served")
    return {
        "requests": int(total("requests")),
        "errors": int(total("errors")),
        "error_samples": [e for part in parts for e in part["error_samples"]][:3],
        "rps": ratio_of(total("requests"), total("elapsed_s")),
        "ttft_p50_ms": percentile(pooled("ttft"), 50),
        "ttft_p99_ms": percentile(pooled("ttft"), 99),
        "total_p50_ms": percentile(pooled("total"), 50),
        "total_p99_ms": percentile(pooled("total"), 99),
        "way_in_p50_ms": percentile(pooled("way_in"), 50),
        "way_back_p50_ms": percentile(pooled("way_back"), 50),
        "client_cpu_pct": 100 * ratio_of(total("client_cpu_s"), total("client_wall_s")),
        "cpu_ms_per_req": 1000 * ratio_of(total("target_cpu_s"), served),
        "upstream_conns_per_req": ratio_of(total("upstream_conns"), served),
        "rps_by_round": [part["rps"] for part in parts],
    }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, as bench/load.py computes it; ``q`` in (0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def measure_long(targets: dict[str, Target], plan: Plan, notes: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in LONG_TARGETS:
        log(f"long stream {name:<8} {LONG_CHUNKS} chunks x {plan.long_repeat}")
        args = ["--long", str(LONG_CHUNKS), "--repeat", str(plan.long_repeat), "--timeout", "120"]
        out[name] = run_cell(targets, name, args, label="long stream", notes=notes, timeout=500)
        log(f"long stream {name:<8} {out[name]['chunks_per_s']:.0f} chunks/s, {out[name]['errors']} errors")
    return out


# ---------------------------------------------------------------- report


def results_table(cells: dict[tuple[int, str], dict[str, Any]]) -> str:
    rows = [
        "| concurrency | target | TTFT p50 (ms) | TTFT p99 (ms) | total p50 (ms) | total p99 (ms) | requests/s "
        "| requests/s by round | requests | errors | client CPU % |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for concurrency in CONCURRENCY:
        for name in TARGETS:
            c = cells[concurrency, name]
            rows.append(
                f"| {concurrency} | {name} | {fmt(c['ttft_p50_ms'])} | {fmt(c['ttft_p99_ms'])} "
                f"| {fmt(c['total_p50_ms'])} | {fmt(c['total_p99_ms'])} | {fmt(c['rps'], 0)} "
                f"| {', '.join(fmt(r, 0) for r in c['rps_by_round'])} "
                f"| {c['requests']} | {c['errors']} | {fmt(c['client_cpu_pct'], 0)} |"
            )
    return "\n".join(rows)


def split_table(cells: dict[tuple[int, str], dict[str, Any]]) -> str:
    rows = [
        "| concurrency | target | TTFT p50 (ms) | way in p50 (ms) | way back p50 (ms) | target CPU ms/request "
        "| upstream connections/request |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for concurrency in CONCURRENCY:
        for name in TARGETS:
            c = cells[concurrency, name]
            rows.append(
                f"| {concurrency} | {name} | {fmt(c['ttft_p50_ms'])} | {fmt(c.get('way_in_p50_ms', math.nan))} "
                f"| {fmt(c.get('way_back_p50_ms', math.nan))} | {fmt(c['cpu_ms_per_req'])} "
                f"| {fmt(c['upstream_conns_per_req'])} |"
            )
    return "\n".join(rows)


def long_table(long: dict[str, dict[str, Any]]) -> str:
    rows = ["| target | chunks/s (median) | runs (chunks/s) | errors |", "|---|---:|---|---:|"]
    for name in LONG_TARGETS:
        runs = ", ".join(fmt(r["chunks_per_s"], 0) if "chunks_per_s" in r else "error" for r in long[name]["runs"])
        rows.append(f"| {name} | {fmt(long[name]['chunks_per_s'], 0)} | {runs} | {long[name]['errors']} |")
    return "\n".join(rows)


def ratio_of(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def verdicts(cells: dict[tuple[int, str], dict[str, Any]], long: dict[str, dict[str, Any]]) -> list[str]:
    added = cells[1, "gateway"]["ttft_p50_ms"] - cells[1, "direct"]["ttft_p50_ms"]
    added_litellm = cells[1, "litellm"]["ttft_p50_ms"] - cells[1, "direct"]["ttft_p50_ms"]
    ratio = ratio_of(cells[16, "gateway"]["rps"], cells[16, "litellm"]["rps"])
    rate, direct_rate = long["gateway"]["chunks_per_s"], long["direct"]["chunks_per_s"]
    errors = sum(c["errors"] for c in cells.values()) + sum(x["errors"] for x in long.values())

    def met(ok: bool, *used: dict[str, Any]) -> str:
        failed = sum(cell["errors"] for cell in used)
        caveat = f" (but {failed} requests failed in the cells used: not a clean measurement)" if failed else ""
        return ("**met**" if ok else "**NOT met**") + caveat

    ttft_verdict = met(added <= MAX_ADDED_TTFT_MS, cells[1, "gateway"], cells[1, "direct"])
    return [
        f"- Added time to first token at concurrency 1 (p50, gateway minus direct): {fmt(added)} ms "
        f"(target <= {MAX_ADDED_TTFT_MS:g} ms): {ttft_verdict}. "
        f"LiteLLM adds {fmt(added_litellm)} ms.",
        f"- Requests/s at concurrency 16, gateway / LiteLLM: {fmt(cells[16, 'gateway']['rps'], 0)} / "
        f"{fmt(cells[16, 'litellm']['rps'], 0)} = {fmt(ratio)}x (target >= {MIN_RPS_RATIO:g}x): "
        f"{met(ratio >= MIN_RPS_RATIO, cells[16, 'gateway'], cells[16, 'litellm'])}.",
        f"- One long stream ({LONG_CHUNKS} chunks) through the gateway: {fmt(rate, 0)} chunks/s vs "
        f"{fmt(direct_rate, 0)} direct ({fmt(100 * ratio_of(rate, direct_rate), 1)}% of direct; "
        f"target >= {MIN_CHUNKS_PER_S} chunks/s): {met(rate >= MIN_CHUNKS_PER_S, long['gateway'])}.",
        *limits_verdicts(cells, met),
        f"- Failed requests across the run: {errors}.",
        client_bound_note(cells),
    ]


def limits_verdicts(cells: dict[tuple[int, str], dict[str, Any]], met: Callable[..., str]) -> list[str]:
    """What a token's limits cost: the limited token against the unlimited one, measured side by side."""
    ttft, ttft_before = cells[1, "limited"]["ttft_p50_ms"], cells[1, "gateway"]["ttft_p50_ms"]
    rps, rps_before = cells[16, "limited"]["rps"], cells[16, "gateway"]["rps"]
    ttft_ratio, rps_ratio = ratio_of(ttft, ttft_before), ratio_of(rps, rps_before)
    ttft_ok = ttft_ratio <= 1 + MAX_LIMITS_COST
    rps_ok = rps_ratio >= 1 - MAX_LIMITS_COST
    return [
        f"- A token with every limit configured (RPM, TPM, budget, model grant), TTFT p50 at concurrency 1: "
        f"{fmt(ttft)} ms vs {fmt(ttft_before)} ms unlimited = {fmt(ttft_ratio, 3)}x (target <= "
        f"{1 + MAX_LIMITS_COST:g}x): {met(ttft_ok, cells[1, 'limited'], cells[1, 'gateway'])}.",
        f"- The same, requests/s at concurrency 16: {fmt(rps, 0)} vs {fmt(rps_before, 0)} unlimited = "
        f"{fmt(rps_ratio, 3)}x (target >= {1 - MAX_LIMITS_COST:g}x): "
        f"{met(rps_ok, cells[16, 'limited'], cells[16, 'gateway'])}.",
    ]


def client_bound_note(cells: dict[tuple[int, str], dict[str, Any]]) -> str:
    bound = [
        f"{name} at c={c}" for (c, name), cell in cells.items() if cell["client_cpu_pct"] >= 90 and not cell["errors"]
    ]
    if not bound:
        return "- The load generator stayed below 90% CPU in every cell: it did not limit the numbers."
    return (
        f"- The load generator was near 100% CPU for {', '.join(bound)}: those requests/s are the client's ceiling, "
        "a lower bound for the target; in the other cells it did not limit the numbers."
    )


def report(
    cells: dict[tuple[int, str], dict[str, Any]],
    long: dict[str, dict[str, Any]],
    *,
    litellm_version: str,
    plan: Plan,
    this_run: Run,
    notes: list[str],
) -> str:
    requests = ", ".join(f"{plan.requests[c] // plan.rounds * plan.rounds} at c={c}" for c in CONCURRENCY)
    machine_now = [*machine(), f"load average at the end {load_average()}"]
    return "\n".join(
        [
            "# Benchmark results",
            "",
            this_run.command_line(),
            "",
            f"- Machine: {'; '.join(machine_now)} (before the run {this_run.load_before}; other work on the machine "
            "shows here)",
            f"- LiteLLM {litellm_version} (`litellm[proxy]`, one worker, master key, no database)",
            "- Gateway: `bodhi api` + `bodhi remote-worker`, Postgres and Redis on loopback, "
            "`BODHI_LOG_LEVEL=WARNING`; "
            "`limited` is the same gateway with a token that has an RPM, a TPM, a monthly budget and a model grant "
            "(none reached), `gateway` with an unlimited token",
            "- Upstream: bench/fake_upstream.py, 16 chunks per response; load: bench/load.py, streaming requests, "
            f"{requests}, in {plan.rounds} rounds per level (the targets take turns within each round, the "
            "order rotating; a warm-up before each), timings pooled over the rounds",
            "",
            "TTFT: until the first SSE event with content has arrived; total: until the whole response has. "
            "Client CPU % is the load generator's own (one process; 100% would mean it limited the numbers).",
            "",
            "## Streaming chat completions",
            "",
            results_table(cells),
            "",
            "## Where the time to first token goes",
            "",
            "Way in: from the client writing the request until the fake upstream had read it; way back: from the "
            "upstream writing the first chunk until the client had it (the upstream stamps both times, from the "
            "same monotonic clock, into the first chunk's id; n/a where a target rewrites the id). "
            "Target CPU ms/request: CPU time of the target's own processes (direct: the fake upstream; gateway: "
            "`bodhi api` + `bodhi remote-worker`, not counting Redis and Postgres; LiteLLM: its proxy process) per "
            "request answered in the cell, warm-up included. "
            "Upstream connections/request: TCP connections the upstream accepted per request it answered in the "
            "cell, warm-up included; near 0 means the target reuses its connections to the provider.",
            "",
            split_table(cells),
            "",
            "## One long stream",
            "",
            long_table(long),
            "",
            "## Targets",
            "",
            *verdicts(cells, long),
            "",
            *(["## Incidents", "", *(f"- {note}" for note in notes), ""] if notes else []),
        ]
    )


# ---------------------------------------------------------------- main


def run(quick: bool) -> int:
    this_run = Run("run.py", quick, log)
    plan = Plan.of(quick)
    litellm_version = ensure_litellm()
    log(f"litellm {litellm_version}")
    with this_run.scope("bodhi-bench-") as (stack, logs):
        upstream = start_upstream(stack, logs)
        log(f"fake upstream on {upstream.url}")
        gateway = start_gateway(stack, logs, upstream)
        log(f"gateway on {gateway.url}")
        litellm = start_litellm(stack, logs, upstream)
        log(f"litellm on {litellm.url}")
        targets = {"direct": upstream, "gateway": gateway, "limited": limited(gateway), "litellm": litellm}
        for target in targets.values():
            check_target(target)
        notes: list[str] = []
        cells = measure(targets, plan, notes)
        long = measure_long(targets, plan, notes)
        if notes or any(c["errors"] for c in [*cells.values(), *long.values()]):
            kept = keep_logs(logs, "bodhi-bench-logs-")
            log(f"something failed: the processes' logs are kept in {kept}")
            notes.append(f"The processes' logs were kept in `{kept}`.")
        text = report(
            cells,
            long,
            litellm_version=litellm_version,
            plan=plan,
            this_run=this_run,
            notes=notes,
        )
    publish("gateway", text, note=f"(written to {RESULTS.relative_to(ROOT)})")
    return 0


def main() -> None:
    args = arguments(__doc__, quick="fewer requests and one long stream per target").parse_args()
    exit_with(lambda: run(args.quick), log)


if __name__ == "__main__":
    main()
