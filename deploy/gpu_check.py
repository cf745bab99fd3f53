"""Check on a GPU machine that ``bodhi local-worker --gpu N`` runs its models on GPU N, through the whole gateway.

Run from the repository root, where llama-cpp-python is built with CUDA (deploy/build-llama-cuda.sh):

    python3 deploy/gpu_check.py [--gpu 0] [--report gpu-check.md]

It writes the benchmark's random ~100M-parameter F16 GGUF (bench/local.py) into a temporary BODHI_HOME, starts an
embedded Postgres and Redis there, then ``bodhi api`` and two local workers:

- ``bodhi local-worker --gpu N --models gpu-offload,cpu-only``: the same file under two aliases, one with
  ``n_gpu_layers`` -1 (every layer on the GPU), one with 0;
- ``bodhi local-worker --gpu M --models pinned-elsewhere`` with M one past the last GPU: pinned to a GPU that does
  not exist, so llama.cpp must see none and run on the CPU even though the alias asks for every layer on a GPU.

It streams the same chat completions through the API to each alias, samples ``nvidia-smi`` meanwhile, and reports
per alias the worker that answered (from ``X-Bodhi-Worker``), tokens/s, time to first token, and the GPU memory
``nvidia-smi`` shows for that worker's process. Everything is stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.local_model import write_bench_gguf  # noqa: E402  # the benchmark's model: ~100M parameters, F16
from bodhi_cli.embedded import embedded_postgres, embedded_redis  # noqa: E402
from bodhi_shared.crypto import load_or_create_key_pair  # noqa: E402
from bodhi_shared.worker_keys import KEYS_DIR  # noqa: E402

PASSWORD = "gpu-check-password"  # noqa: S105  # a throwaway admin of a throwaway database
PROMPTS = [f"Request {i}: tell me about the weather in city number {i}." for i in range(4)]


@dataclass
class Answer:
    worker: str
    ttft_ms: float
    tokens: int
    tokens_per_s: float


@dataclass
class GpuSamples:
    """``nvidia-smi`` read every 0.2 s: the most memory each process was seen using, and the GPU's utilisation."""

    by_pid: dict[int, int] = field(default_factory=dict)  # MiB
    utilisation: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            apps = _smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
            for line in apps.splitlines():
                pid, _, used = line.partition(",")
                with contextlib.suppress(ValueError):
                    self.by_pid[int(pid)] = max(self.by_pid.get(int(pid), 0), int(used))
            with contextlib.suppress(ValueError):
                self.utilisation.append(int(_smi("--query-gpu=utilization.gpu", "--format=csv,noheader,nounits")))
            self.stop.wait(0.2)


@contextlib.contextmanager
def sampling_gpu() -> Iterator[GpuSamples]:
    """``nvidia-smi`` sampled in a thread while the block runs."""
    samples = GpuSamples()
    sampler = threading.Thread(target=samples.run, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        samples.stop.set()
        sampler.join()


def _smi(*args: str) -> str:
    try:
        return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def bodhi(args: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "bodhi_cli.main", *args], env=env, stdout=out, stderr=out)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def stream_chat(http: httpx.Client, alias: str, prompt: str, max_tokens: int) -> Answer:
    body = {
        "model": alias,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1234,
    }
    sent = time.monotonic()
    times: list[float] = []
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{alias}: {response.status_code} {response.read().decode()}")
        worker = response.headers.get("x-bodhi-worker", "?")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            if any(choice.get("delta", {}).get("content") for choice in chunk.get("choices", [])):
                times.append(time.monotonic())
    if len(times) < 2:
        raise RuntimeError(f"{alias}: {len(times)} content chunks")
    return Answer(
        worker=worker,
        ttft_ms=(times[0] - sent) * 1000,
        tokens=len(times),
        tokens_per_s=(len(times) - 1) / (times[-1] - times[0]),
    )


def worker_pid(worker_id: str) -> int | None:
    """``local-{host}-{pid}-{suffix}`` -> pid."""
    parts = worker_id.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def gpu_count() -> int:
    return len([line for line in _smi("--query-gpu=index", "--format=csv,noheader").splitlines() if line.strip()])


def measure(http: httpx.Client, alias: str, rounds: int, max_tokens: int) -> tuple[list[Answer], GpuSamples]:
    wait_until(lambda: http.get("/health").json()["workers"]["local"] >= 1, "a local worker")
    stream_chat(http, alias, "warm-up: load the model", 8)  # loads the model (timed apart from the answers)
    with sampling_gpu() as samples:
        answers = [stream_chat(http, alias, PROMPTS[i % len(PROMPTS)], max_tokens) for i in range(rounds)]
    return answers, samples


def direct_child(model: Path, rounds: int, max_tokens: int) -> None:
    """``--direct-child``: the answers from ``llama_cpp.Llama`` called directly, as JSON lines on stdout."""
    import llama_cpp  # noqa: PLC0415  # after the parent pinned the GPU (CUDA_VISIBLE_DEVICES), as the worker does

    llm = llama_cpp.Llama(str(model), n_ctx=512, n_gpu_layers=-1, verbose=False)

    def answer(prompt: str, tokens: int) -> Answer:
        sent = time.monotonic()
        times = []
        for chunk in llm.create_chat_completion(
            [{"role": "user", "content": prompt}], stream=True, max_tokens=tokens, temperature=0, seed=1234
        ):
            if chunk["choices"][0]["delta"].get("content"):  # type: ignore[index, union-attr]
                times.append(time.monotonic())
        return Answer(
            worker=f"direct-{os.getpid()}-x",
            ttft_ms=(times[0] - sent) * 1000,
            tokens=len(times),
            tokens_per_s=(len(times) - 1) / (times[-1] - times[0]),
        )

    answer("warm-up: load the model", 8)
    for i in range(rounds):
        print(json.dumps(answer(PROMPTS[i % len(PROMPTS)], max_tokens).__dict__), flush=True)
    # On an H200 (CUDA 13, llama-cpp-python 0.3.36) this process died of SIGSEGV, without a Python traceback, before
    # any of its answers reached the parent: skip the interpreter's teardown of the CUDA model once they are out.
    sys.stdout.flush()
    os._exit(0)


def measure_direct(model: Path, gpu: int, rounds: int, max_tokens: int) -> tuple[list[Answer], GpuSamples]:
    """The same answers from ``llama_cpp.Llama`` in a process of its own, pinned like the worker: the baseline."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}
    argv = [sys.executable, "-X", "faulthandler", __file__, "--direct-child", str(model)]
    with sampling_gpu() as samples:
        done = subprocess.run(
            [*argv, "--rounds", str(rounds), "--max-tokens", str(max_tokens)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    answers = [Answer(**json.loads(line)) for line in done.stdout.splitlines() if line.startswith("{")]
    if len(answers) < rounds:
        raise RuntimeError(f"exit {done.returncode} after {len(answers)} answers: {done.stderr[-1500:]}")
    return answers, samples


def report_row(alias: str, params: str, answers: list[Answer], samples: GpuSamples) -> str:
    worker = answers[0].worker
    pid = worker_pid(worker)
    memory = samples.by_pid.get(pid, 0) if pid is not None else 0
    busy = max(samples.utilisation, default=0)
    return (
        f"| {alias} | {params} | `{worker}` | {statistics.median(a.ttft_ms for a in answers):.0f} | "
        f"{statistics.median(a.tokens_per_s for a in answers):.1f} | {answers[0].tokens} | "
        f"{memory} MiB | {busy}% |"
    )


def log_lines(path: Path, *needles: str) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if any(n in line for n in needles)]


Results = dict[str, tuple[list[Answer], GpuSamples] | str]


def create_aliases(http: httpx.Client, model: Path, aliases: dict[str, int]) -> None:
    """One alias per entry, on the same file, with that many layers on the GPU."""
    for alias, layers in aliases.items():
        created = http.post(
            "/bodhi/v1/models/alias",
            json={"alias": alias, "path": str(model), "context_params": {"n_ctx": 512, "n_gpu_layers": layers}},
        )
        if created.status_code != 201:
            raise RuntimeError(f"creating alias {alias}: {created.status_code} {created.text}")


def write_report(
    out: IO[str],
    *,
    gpu: int,
    missing: int,
    parameters: int,
    rounds: int,
    max_tokens: int,
    results: Results,
    logs: dict[str, Path],
) -> None:
    smi = _smi("--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader").strip()
    print(f"# GPU check: `bodhi local-worker --gpu {gpu}`\n", file=out)
    print(f"- nvidia-smi: {smi or '(not found)'}", file=out)
    print(f"- model: random-weight llama GGUF, F16, {parameters / 1e6:.1f}M parameters, n_ctx 512", file=out)
    print(
        f"- each alias: a warm-up (loads the model), then {rounds} streamed answers of {max_tokens} tokens\n",
        file=out,
    )
    columns = "TTFT p50 (ms) | tokens/s p50 | tokens | GPU memory of its process | GPU utilisation, max"
    print(f"| alias | worker | answered by | {columns} |", file=out)
    print("|---|---|---|---:|---:|---:|---:|---:|", file=out)
    pinned = {"gpu-offload": f"--gpu {gpu}, n_gpu_layers -1", "cpu-only": f"--gpu {gpu}, n_gpu_layers 0"}
    pinned["pinned-elsewhere"] = f"--gpu {missing} (no such GPU), n_gpu_layers -1"
    pinned["direct"] = f"no gateway: `llama_cpp.Llama(n_gpu_layers=-1)` in a process with CUDA_VISIBLE_DEVICES={gpu}"
    for alias, result in results.items():
        if isinstance(result, str):
            print(f"| {alias} | {pinned[alias]} | {result} | | | | | |", file=out)
        else:
            print(report_row(alias, pinned[alias], *result), file=out)
    gateway, direct = results.get("gpu-offload"), results.get("direct")
    if not isinstance(gateway, str | None) and not isinstance(direct, str | None):
        rate = statistics.median(a.tokens_per_s for a in gateway[0])
        base = statistics.median(a.tokens_per_s for a in direct[0])
        print(
            f"\ngpu-offload through the gateway / direct, tokens/s: {rate:.1f} / {base:.1f} = {rate / base:.3f}",
            file=out,
        )
    print("\nWorker logs (pinning, and what llama.cpp said about devices):\n", file=out)
    for name in ("worker-gpu", "worker-missing"):
        for line in log_lines(logs[name], "CUDA_VISIBLE_DEVICES", "loaded", "ERROR", "Error"):
            print(f"    {name}: {line[:240]}", file=out)


def run(gpu: int, rounds: int, max_tokens: int, out: IO[str], logs_to: Path | None) -> None:
    missing = max(gpu_count(), gpu + 1)
    with tempfile.TemporaryDirectory(prefix="bodhi-gpu-check-") as scratch:
        home = Path(scratch)
        model = home / "models" / "gpu-check-f16.gguf"
        model.parent.mkdir(parents=True)
        parameters = write_bench_gguf(model)
        load_or_create_key_pair(home / KEYS_DIR)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        with embedded_postgres(home / "postgres") as database_url, embedded_redis(home / "redis") as redis_url:
            env = {
                **os.environ,
                "BODHI_HOME": str(home),
                "BODHI_PORT": str(port),
                "BODHI_DATABASE_URL": database_url,
                "BODHI_REDIS_URL": redis_url,
                "BODHI_LOG_LEVEL": "INFO",
            }
            env.pop("CUDA_VISIBLE_DEVICES", None)
            logs = {name: home / f"{name}.log" for name in ("api", "worker-gpu", "worker-missing")}
            with (
                bodhi(["api"], env=env, log=logs["api"]),
                bodhi(
                    ["local-worker", "--gpu", str(gpu), "--models", "gpu-offload,cpu-only"],
                    env=env,
                    log=logs["worker-gpu"],
                ),
                bodhi(
                    ["local-worker", "--gpu", str(missing), "--models", "pinned-elsewhere"],
                    env=env,
                    log=logs["worker-missing"],
                ),
                httpx.Client(base_url=base_url, timeout=300, headers={"Origin": base_url}) as http,
            ):
                wait_until(lambda: http.get("/ping").status_code == 200, "the API")
                http.post("/bodhi/v1/setup", json={"username": "admin", "password": PASSWORD}).raise_for_status()
                http.post("/bodhi/v1/auth/login", json={"username": "admin", "password": PASSWORD}).raise_for_status()
                aliases = {"gpu-offload": -1, "cpu-only": 0, "pinned-elsewhere": -1}
                create_aliases(http, model, aliases)
                results: Results = {}
                for alias in aliases:
                    try:
                        results[alias] = measure(http, alias, rounds, max_tokens)
                    except (RuntimeError, httpx.HTTPError) as exc:  # reported in its row; the others still run
                        results[alias] = f"failed: {exc}"[:300]
                if any(isinstance(result, str) for result in results.values()):
                    keep_logs(logs.values(), logs_to)
            try:  # the workers are stopped: the GPU is the direct process's alone
                results["direct"] = measure_direct(model, gpu, rounds, max_tokens)
            except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
                results["direct"] = f"failed: {exc}".replace("\n", " ")[:1600]

        write_report(
            out,
            gpu=gpu,
            missing=missing,
            parameters=parameters,
            rounds=rounds,
            max_tokens=max_tokens,
            results=results,
            logs=logs,
        )


def keep_logs(paths: Any, into: Path | None) -> None:
    if into is None:
        return
    into.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.exists():
            shutil.copy(path, into / path.name)
    print(f"the processes' logs are in {into}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--report", type=Path, help="also write the report to this file")
    parser.add_argument("--logs", type=Path, help="copy the processes' logs here when the check fails")
    parser.add_argument("--direct-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct_child:
        direct_child(args.direct_child, args.rounds, args.max_tokens)
        return
    with tempfile.TemporaryFile("w+") as buffer:
        run(args.gpu, args.rounds, args.max_tokens, buffer, args.logs)
        buffer.seek(0)
        text = buffer.read()
    print(text)
    if args.report:
        args.report.write_text(text)


if __name__ == "__main__":
    main()
