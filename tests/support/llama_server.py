"""llama-cpp-python's own OpenAI-compatible server as a real, independent peer, run as a child process."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def llama_server_command(
    model_path: Path, *, model_alias: str, port: int, n_ctx: int, embedding: bool = True, n_threads: int | None = None
) -> list[str]:
    """``python -m llama_cpp.server`` on loopback; with ``embedding``, /v1/embeddings answers too (chat still works)."""
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        model_alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        *(["--embedding", "true"] if embedding else []),
        *(["--n_threads", str(n_threads)] if n_threads is not None else []),
    ]


def _log_text(log_path: Path) -> str:
    return log_path.read_text(errors="replace") if log_path.exists() else "(no log)"


def _wait_until_listed(base_url: str, popen: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    """Poll ``GET /v1/models`` until it answers 200; fail early, with the log, if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {popen.returncode}:\n{_log_text(log_path)}")
        try:
            if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"llama_cpp.server did not answer at {base_url} within {timeout} s:\n{_log_text(log_path)}")


def _stop(popen: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


@contextmanager
def run_llama_server(
    model_path: Path,
    *,
    model_alias: str = "tiny-llama",
    n_ctx: int = 256,
    log_path: Path | None = None,
    start_timeout: float = 60,
) -> Iterator[str]:
    """Serve ``model_path`` with ``python -m llama_cpp.server`` on a free loopback port; yield its ``.../v1`` URL.

    The server's output goes to ``log_path`` (by default ``server.log`` in a new temporary directory), never to
    the test output; the process is stopped (SIGTERM, then SIGKILL) when the block exits.
    """
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="llama-server-")) / "server.log"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = llama_server_command(model_path, model_alias=model_alias, port=port, n_ctx=n_ctx)
    with log_path.open("wb") as log:
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_until_listed(base_url, popen, log_path, start_timeout)
            yield base_url
        finally:
            _stop(popen)
