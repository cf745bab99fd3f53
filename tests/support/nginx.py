"""A real nginx on loopback, load balancing over API replicas, in a prefix of its own (never the system's nginx).

The proxy settings are those of ``deploy/nginx/bodhi.conf`` (streams unbuffered, HTTP/1.1 to the replicas, long read
timeouts, the client's address and scheme in ``X-Forwarded-*``, another replica on a connection error), over a static
``upstream`` of loopback ports instead of Docker's DNS. Each response names the replica that served it in
``X-Bodhi-Upstream`` (nginx's ``$upstream_addr``), so a test can tell which streams a killed replica held.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.fake_upstream import free_port

NGINX = "/usr/sbin/nginx"
UPSTREAM_HEADER = "x-bodhi-upstream"
# A replica that refuses a connection is skipped for this long (nginx's passive health check), then tried again.
FAIL_TIMEOUT_S = 30


def nginx_binary() -> str | None:
    """The nginx executable, if installed (CI installs nginx-light)."""
    return shutil.which("nginx") or (NGINX if Path(NGINX).exists() else None)


def _temp_paths(binary: str, prefix: Path) -> str:
    """Every temp path nginx would otherwise create under /var/lib/nginx, inside ``prefix``; only for the modules
    this build has (an unknown directive is a configuration error)."""
    built = subprocess.run([binary, "-V"], capture_output=True, text=True, check=True).stderr
    lines = [f"client_body_temp_path {prefix / 'client_body'};", f"proxy_temp_path {prefix / 'proxy'};"]
    for module in ("fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{module}_module" not in built:
            lines.append(f"{module}_temp_path {prefix / module};")
    return "\n    ".join(lines)


def _user_line() -> str:
    """As root (CI), nginx's workers would switch to ``nobody``, who cannot use this test's files: keep the user."""
    if os.geteuid() != 0:
        return ""  # the `user` directive would only be ignored, with a warning
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


def nginx_conf(*, binary: str, prefix: Path, port: int, replicas: Sequence[str]) -> str:
    servers = "\n        ".join(f"server {replica} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;" for replica in replicas)
    return f"""{_user_line()}
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;

events {{
    worker_connections 4096;
}}

http {{
    {_temp_paths(binary, prefix)}
    log_format upstreams '$remote_addr "$request" $status $upstream_addr $upstream_status $request_time';
    access_log {prefix / "access.log"} upstreams;
    client_max_body_size 8m;

    upstream bodhi_api {{
        {servers}
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://bodhi_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";

            proxy_set_header Host $http_host;  # with its port, as a browser's Origin has it (deploy/nginx/bodhi.conf)
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;

            proxy_buffering off;
            proxy_request_buffering off;
            proxy_cache off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_connect_timeout 2s;

            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;

            add_header X-Bodhi-Upstream $upstream_addr always;
        }}
    }}
}}
"""


class Nginx:
    """``nginx -p PREFIX -c PREFIX/nginx.conf`` in the foreground (``daemon off``), its logs under ``prefix``."""

    def __init__(self, prefix: Path, *, replicas: Sequence[str], port: int | None = None) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
        self.prefix = prefix
        self.port = port or free_port()
        self.replicas = list(replicas)
        prefix.mkdir(parents=True, exist_ok=True)
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(nginx_conf(binary=binary, prefix=prefix, port=self.port, replicas=self.replicas))
        self._stderr = (prefix / "stderr.log").open("wb")
        self.popen = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(self.conf)], stdout=self._stderr, stderr=subprocess.STDOUT
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_serving(self, path: str = "/ping", *, timeout: float = 15) -> None:
        """Until a request through nginx reaches a replica (``path`` answers 200)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.popen.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.base_url}{path}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not answer within {timeout} s:\n{self.logs()}")

    def logs(self) -> str:
        self._stderr.flush()
        parts = [self.prefix / name for name in ("stderr.log", "error.log")]
        return "\n".join(part.read_text(errors="replace") for part in parts if part.exists())

    def access_log(self) -> str:
        path = self.prefix / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._stderr.close()


@contextmanager
def running_nginx(prefix: Path, *, replicas: Sequence[str]) -> Iterator[Nginx]:
    """nginx balancing over ``replicas`` (``127.0.0.1:PORT`` each), serving once a request reaches one."""
    nginx = Nginx(prefix, replicas=replicas)
    try:
        nginx.wait_until_serving()
        yield nginx
    finally:
        nginx.stop()
