"""What the benchmarks share: the servers they use, child processes, the gateway's API and workers, CPU time from
/proc, the lines of a report that say what ran where, and the frame of a run (SIGTERM, logs kept, exit codes).

bench/run.py and bench/local.py import it as ``common`` (bench/ is the script directory when they run);
bench/local.py, imported as ``bench.local`` (deploy/gpu_check.py), imports it as ``bench.common``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `tests.support` helpers, when run as a script

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def logger(name: str) -> Callable[[str], None]:
    """A ``log(message)`` that writes ``[NAME HH:MM:SS] message`` to stderr."""

    def log(message: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return log


# ---------------------------------------------------------------- processes


class Child:
    """A child process with its output in a log file (stdout too, unless piped); stopped with SIGTERM, then SIGKILL
    after ``stop_timeout`` seconds."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        logs: Path,
        stdout_pipe: bool = False,
        stop_timeout: float = 15,
    ) -> None:
        self.name = name
        self.stop_timeout = stop_timeout
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )

    def read_line(self, timeout: float) -> str:
        """The next line of a piped stdout, or an error after ``timeout`` seconds."""
        assert self.popen.stdout is not None
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"{self.name} printed nothing within {timeout} s:\n{self.log_tail()}")
        return self.popen.stdout.readline().decode()

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")

    def log_tail(self, size: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-size:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()


def wait_http(url: str, child: Child, *, timeout: float, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout} s:\n{child.log_tail()}")


def free_port() -> int:
    from tests.support.fake_upstream import free_port as pick

    return pick()


def cpu_seconds(pids: Iterable[int], *, descendants: bool = False) -> float:
    """User + system CPU time of these processes (all their threads), from /proc; with ``descendants``, of all
    their descendants as well (a few levels deep)."""
    wanted = set(pids)
    if descendants:
        stats = _proc_stats(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
        for _ in range(8):
            wanted |= {pid for pid, (parent, _) in stats.items() if parent in wanted}
    else:
        stats = _proc_stats(wanted)
    return sum(stats[pid][1] for pid in wanted if pid in stats) / CLOCK_TICKS


def _proc_stats(pids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """Parent and CPU clock ticks (user + system) of each of these processes that is still there."""
    stats = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            stats[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    return stats


# ---------------------------------------------------------------- the gateway


@dataclass
class Api:
    """``bodhi api`` as users run it, a token for an admin, and what its workers need to start beside it."""

    stack: contextlib.ExitStack
    logs: Path
    url: str
    env: dict[str, str]
    process: Child
    token: str
    stop_timeout: float

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def create(self, path: str, body: dict[str, Any], *, what: str) -> None:
        """``POST path`` with the admin's token; an error unless it answers 201 Created."""
        created = httpx.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=30)
        if created.status_code != 201:
            raise RuntimeError(f"{what} failed: {created.status_code} {created.text}")

    def start_worker(self, name: str, *args: str, kind: str, count: int = 1, timeout: float = 60) -> Child:
        """``bodhi ARGS`` (a worker); returns once /health counts ``count`` workers of ``kind``."""
        from tests.support.processes import bodhi

        worker = Child(name, bodhi(*args), env=self.env, logs=self.logs, stop_timeout=self.stop_timeout)
        self.stack.callback(worker.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            worker.check_alive()
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{self.url}/health", timeout=2).json().get("workers", {}).get(kind, 0) >= count:
                    return worker
            time.sleep(0.2)
        raise RuntimeError(
            f"{worker.name} not seen at {self.url}/health within {timeout} s (fewer than {count} {kind} workers):\n"
            f"{worker.log_tail()}"
        )


def start_api(stack: contextlib.ExitStack, logs: Path, *, name: str, stop_timeout: float = 15) -> Api:
    """``bodhi api`` (only ``BODHI_LOG_LEVEL=WARNING`` and ``BODHI_ALLOW_PRIVATE_UPSTREAMS`` set) on a fresh
    Postgres database and Redis prefix (``name`` and a random suffix; dropped and deleted when ``stack`` closes), its
    ``BODHI_HOME`` in ``logs``; returns once it answers, with an admin user and a token created."""
    from bodhi_shared.crypto import load_or_create_key_pair
    from bodhi_shared.worker_keys import KEYS_DIR
    from tests.support.backing import create_database, drop_database, new_name
    from tests.support.processes import bodhi, create_user_and_token

    database = new_name(name)
    database_url = asyncio.run(create_database(POSTGRES_URL, database))
    stack.callback(lambda: asyncio.run(drop_database(POSTGRES_URL, database)))
    prefix = new_name(name)
    stack.callback(delete_redis_prefix, prefix)
    home = logs / "bodhi-home"
    load_or_create_key_pair(home / KEYS_DIR)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BODHI_")} | {
        "BODHI_DATABASE_URL": database_url,
        "BODHI_REDIS_URL": REDIS_URL,
        "BODHI_REDIS_PREFIX": prefix,
        "BODHI_HOME": str(home),
        "BODHI_PORT": str(port),
        "BODHI_LOG_LEVEL": "WARNING",
        "BODHI_ALLOW_PRIVATE_UPSTREAMS": "true",  # the benchmarks' upstreams listen on loopback
    }
    api = Child("bodhi-api", bodhi("api"), env=env, logs=logs, stop_timeout=stop_timeout)
    stack.callback(api.stop)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/ping", api, timeout=60)
    token = create_user_and_token(env, username=new_name("bench_admin"), password=new_name("pw-bench"))
    return Api(stack, logs, url, env, api, token, stop_timeout)


def delete_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


# ---------------------------------------------------------------- report


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine(*, cpus: str = "", python: str = "") -> list[str]:
    """The CPUs, Python and the platform, ``cpus`` and ``python`` added to their lines."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [f"{os.cpu_count()} CPUs ({cpu}){cpus}", f"Python {platform.python_version()}{python}", platform.platform()]


def git_commit() -> str:
    """The commit measured, marked when the working tree has changes on top of it (read-only git calls)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # `git status` must not even refresh the index

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=30, env=env
        )

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        if head.returncode == 0:
            return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
    return "unknown"


# ---------------------------------------------------------------- the run


def arguments(doc: str | None, *, quick: str) -> argparse.ArgumentParser:
    """A script's command line: its docstring as the description, and ``--quick`` (``quick`` says what it does)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


@dataclass
class Run:
    """One run of ``bench/SCRIPT [--quick]``: when it started, the load on the machine then, and its scope."""

    script: str
    quick: bool
    log: Callable[[str], None]
    started: float = field(default_factory=time.monotonic)
    load_before: str = field(default_factory=load_average)

    def command_line(self) -> str:
        """The report's first line: the command, when, on which commit, how long the run has taken so far."""
        return (
            f"`uv run python bench/{self.script}{' --quick' if self.quick else ''}` on "
            f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit {git_commit()}, "
            f"{time.monotonic() - self.started:.0f} s."
        )

    @contextlib.contextmanager
    def scope(self, logs_prefix: str) -> Iterator[tuple[contextlib.ExitStack, Path]]:
        """A stack that stops what the run starts when the block ends, also on errors, Ctrl-C and SIGTERM, and a
        temporary directory for the processes' logs, removed last."""
        with contextlib.ExitStack() as stack, terminate_on_sigterm():
            yield stack, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=logs_prefix)))
            self.log("stopping everything")


def publish(section: str, text: str, *, note: str) -> None:
    """Write the report ``text`` into bench/RESULTS.md as its section ``section``; print it, and ``note`` after it."""
    from results_file import write_section  # bench/ is on sys.path: only the scripts publish

    write_section(section, text)
    print(text)
    print(note)


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the cleanup runs."""

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def keep_logs(logs: Path, prefix: str) -> Path:
    """A copy of the processes' logs (not the gateway's BODHI_HOME) in a new directory that stays."""
    kept = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.copytree(logs, kept, dirs_exist_ok=True, ignore=shutil.ignore_patterns("bodhi-home"))
    return kept


def exit_with(run: Callable[[], int], log: Callable[[str], None]) -> NoReturn:
    """Exit with ``run()``'s code, or 130 after Ctrl-C or SIGTERM (by then everything was stopped)."""
    try:
        sys.exit(run())
    except KeyboardInterrupt:
        log("interrupted; everything was stopped")
        sys.exit(130)
