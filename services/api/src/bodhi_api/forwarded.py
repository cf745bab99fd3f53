"""Pure ASGI middleware: behind a load balancer, the client's address, scheme and host, from trusted proxies only.

A proxy that terminates TLS reaches the API over plain HTTP, from its own address, possibly with a Host of its own;
it says what the client used in ``X-Forwarded-For`` / ``-Proto`` / ``-Host``. Any client can send those headers, so
they are believed only when the TCP peer is one of ``BODHI_TRUSTED_PROXIES``; otherwise they are ignored. Believed,
they set what the whole app sees:

    X-Forwarded-For    ``scope["client"]``: the login limit's client address (the rightmost untrusted hop)
    X-Forwarded-Proto  ``scope["scheme"]``: the session cookie is ``Secure`` when the client used https
    X-Forwarded-Host   the ``Host`` header: the same-origin check (``principal.check_same_origin``) compares a
                       browser's ``Origin`` with it, and URLs the app builds name it

For and Proto are uvicorn's own ``ProxyHeadersMiddleware`` (``bodhi api`` turns uvicorn's copy off, so nothing else
reads them); Host is added here, by the same trust rule. Of several ``X-Forwarded-Host`` values the last one wins:
the one the proxy next to the API set (a client's own comes first).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

_FORWARDED_HOST = b"x-forwarded-host"
# A host name or IP literal with an optional port: nothing that could smuggle a path, user info or a second value.
_HOST = re.compile(rb"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class ForwardedHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, trusted_proxies: list[str]) -> None:
        self.app = app
        self._enabled = bool(trusted_proxies)
        # An empty list would make uvicorn trust nobody anyway; ``_enabled`` skips it altogether.
        # uvicorn types ASGI apps with its own TypedDicts, Starlette with plain mappings: the same calls at run time.
        self._proxy_headers: Any = ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxies)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._enabled or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if client and client[0] in self._proxy_headers.trusted_hosts:  # the TCP peer, before For rewrites it
            _apply_forwarded_host(scope)
        await self._proxy_headers(scope, receive, send)


def _apply_forwarded_host(scope: Scope) -> None:
    values = [value for name, value in scope["headers"] if name == _FORWARDED_HOST]
    if not values:
        return
    host = b",".join(values).split(b",")[-1].strip()
    if not _HOST.fullmatch(host):
        return  # malformed: keep the Host the proxy sent
    scope["headers"] = [(name, value) for name, value in scope["headers"] if name != b"host"] + [(b"host", host)]
