"""``bodhi serve`` supervises its children: one that dies is restarted, and the gateway keeps serving."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.bodhi_cli.test_serve import EMBEDDED_TIMEOUT, chat, embedded_env
from tests.support.fake_upstream import FakeUpstream, free_port
from tests.support.processes import BodhiProcess, create_user_and_token, wait_for_workers, wait_until_serving

WORKER_HEADER = "x-bodhi-worker"


def child_pids(parent: int, command: str) -> list[int]:
    """The live children of ``parent`` whose command line has the argument ``command`` (a /proc scan)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # "pid (comm) state ppid ..."; comm may hold spaces
        if ppid == parent and command.encode() in argv:
            found.append(int(entry.name))
    return found


def wait_for_new_child(parent: int, command: str, *, not_pid: int, within: float) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        fresh = [pid for pid in child_pids(parent, command) if pid != not_pid]
        if fresh:
            return fresh[0]
        time.sleep(0.05)
    raise AssertionError(f"no new {command} child of {parent} within {within} s")


def chat_served_by(base_url: str, model: str, token: str, *, pid: int, within: float) -> httpx.Response:
    """Chat until a response is served by the worker with ``pid``; the last response if none was."""
    deadline = time.monotonic() + within
    while True:
        response = chat(base_url, model, token)
        served_by = response.headers.get(WORKER_HEADER, "")
        if (response.status_code == 200 and f"-{pid}-" in served_by) or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.mark.timeout(150)
def test_a_killed_remote_worker_is_restarted_and_the_gateway_keeps_serving(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    home, port = tmp_path / "home", free_port()
    env = embedded_env(home, port)
    base_url = f"http://127.0.0.1:{port}"
    serve = BodhiProcess(["serve"], env=env, log_path=tmp_path / "serve.log")
    try:
        wait_until_serving(base_url, serve, timeout=EMBEDDED_TIMEOUT)
        wait_for_workers(base_url)
        token = create_user_and_token(env, username="survivor", password="survivor-password")
        created = httpx.post(
            f"{base_url}/bodhi/v1/models/api",
            headers={"Authorization": f"Bearer {token}"},
            json={"base_url": fake_upstream.base_url, "api_key": "sk-survivor", "models": ["survivor-model"]},
            timeout=20,
        )
        assert created.status_code == 201, created.text
        assert chat(base_url, "survivor-model", token).status_code == 200

        [first_worker] = child_pids(serve.popen.pid, "remote-worker")
        os.kill(first_worker, signal.SIGKILL)
        killed_at = time.monotonic()
        pings = []
        while time.monotonic() - killed_at < 1.5:  # the old supervisor stopped everything within 0.5 s
            pings.append(httpx.get(f"{base_url}/ping", timeout=2).status_code)
            time.sleep(0.1)
        second_worker = wait_for_new_child(serve.popen.pid, "remote-worker", not_pid=first_worker, within=10)
        restarted_after = time.monotonic() - killed_at
        wait_for_workers(base_url)
        response = chat_served_by(base_url, "survivor-model", token, pid=second_worker, within=15)
        served_after = time.monotonic() - killed_at
        still_running = serve.popen.poll() is None
    finally:
        exit_code = serve.stop(timeout=60)

    log = serve.log_path.read_text(errors="replace")
    assert still_running, log
    assert set(pings) == {200}, pings
    assert restarted_after < 5, restarted_after
    assert response.status_code == 200, response.text
    assert f"-{second_worker}-" in response.headers[WORKER_HEADER]  # served by the restarted worker
    assert served_after < 20, served_after
    assert "remote-worker exited (code -9)" in log
    assert f"remote-worker restarted (pid {second_worker})" in log
    assert exit_code == 0, log
