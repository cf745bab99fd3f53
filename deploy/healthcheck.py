#!/usr/bin/env python3
"""Container health checks for images without curl (installed as ``bodhi-healthcheck`` by deploy/Dockerfile).

    bodhi-healthcheck ping     GET http://127.0.0.1:$BODHI_PORT/ping     the API process answers (liveness)
    bodhi-healthcheck ready    GET http://127.0.0.1:$BODHI_PORT/ready    the replica can serve a request now
    bodhi-healthcheck worker   GET http://127.0.0.1:$BODHI_WORKER_METRICS_PORT/metrics   the worker process serves

Exit 0 on a 2xx answer within the timeout, 1 otherwise (the reason on stderr), as HEALTHCHECK expects. The standard
library only: it runs with any Python of the image.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 4.0


def url_for(check: str) -> str:
    if check in ("ping", "ready"):
        return f"http://127.0.0.1:{os.environ.get('BODHI_PORT', '1135')}/{check}"
    if check == "worker":
        port = os.environ.get("BODHI_WORKER_METRICS_PORT")
        if not port:
            raise SystemExit("BODHI_WORKER_METRICS_PORT is not set: the worker serves no port to check")
        return f"http://127.0.0.1:{port}/metrics"
    raise SystemExit(f"usage: bodhi-healthcheck ping|ready|worker (not {check!r})")


def main(argv: list[str]) -> int:
    url = url_for(argv[1] if len(argv) > 1 else "ping")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - a fixed local http URL
            status = response.status
    except urllib.error.HTTPError as exc:  # 503 from /ready: not ready, and the body says why
        print(f"{url}: {exc.code} {exc.read(500).decode(errors='replace')}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
