"""Pure ASGI middleware: the web UI's responses get a strict Content-Security-Policy and related headers.

The policy allows only the gateway's own scripts, styles and connections, with no inline script or style at all,
so markup that slipped into a page (a model name, a chat message rendered as Markdown) cannot run or restyle
anything. The JSON API needs none of this (browsers do not render it), so only UI paths get the headers.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
UI_PREFIXES = ("/ui/", "/docs")
UI_PATHS = frozenset({"/", "/ui"})
STATIC_PREFIX = "/ui/static/"

_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
# Static files are revalidated on every use (a cheap 304 by ETag), so an upgraded gateway never runs a stale
# script against a newer page; the files carry no version in their names to make them cacheable forever.
_STATIC_HEADERS = [*_HEADERS, (b"cache-control", b"no-cache")]


def is_ui_path(path: str) -> bool:
    return path in UI_PATHS or path.startswith(UI_PREFIXES)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not is_ui_path(path):
            await self.app(scope, receive, send)
            return
        extra = _STATIC_HEADERS if path.startswith(STATIC_PREFIX) else _HEADERS
        names = {name for name, _ in extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*kept, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
