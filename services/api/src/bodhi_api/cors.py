"""Cross-origin calls from browser apps on the origins ``BODHI_CORS_ORIGINS`` names (none by default).

Starlette's ``CORSMiddleware`` answers their preflights (``OPTIONS`` with ``Access-Control-Request-Method``: 200,
never the route's 405) and marks their answers readable. Never with credentials: an allowed origin's script
calls the API with a token it holds (``Authorization``, or ``x-api-key`` as Anthropic's SDK sends it), and the
browser neither sends the session cookie on a preflighted call nor lets a script read an answer to one that
carried it. A cookie-carrying state change from another origin is still refused on its own
(``auth.principal.check_same_origin``): a form post needs no preflight.

A request from an origin not named gets no CORS header at all: the browser keeps the answer from the page.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

from bodhi_api.settings import ApiSettings

ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# What clients send: Bodhi's own, the OpenAI and Anthropic JS SDKs' (their `X-Stainless-*` platform, retry and
# helper headers; OpenAI's organisation, project and beta; Anthropic's key, version, beta and the header its SDK
# adds in a browser). Accept, Content-Type and the other safelisted headers are always allowed.
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-Id",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "OpenAI-Beta",
    "OpenAI-Organization",
    "OpenAI-Project",
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Retry-Count",
    "X-Stainless-Timeout",
    "X-Stainless-Helper-Method",
    "X-Stainless-Poll-Helper",
    "X-Stainless-Custom-Poll-Interval",
)
# What a script may read of an answer besides the safelisted headers: the request's ids and a relayed provider's
# rate-limit headers (``bodhi_shared.errors.RELAYED_HEADER_PREFIXES``: OpenAI's names and the short ones).
EXPOSED_HEADERS = (
    "X-Request-Id",
    "X-Bodhi-Request-Id",
    "Retry-After",
    "retry-after-ms",  # what the OpenAI SDKs prefer to Retry-After (a rate limit's 429, ``auth.limits``)
    *(f"x-ratelimit-{what}{of}" for of in ("-requests", "-tokens", "") for what in ("limit", "remaining", "reset")),
)


class AllowedOriginsCORS(CORSMiddleware):
    """``CORSMiddleware`` for the allowed origins only: any other origin's request reaches the app untouched (an
    ``OPTIONS`` gets the app's own answer), with no CORS header, only ``Vary: Origin`` for caches."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = Headers(scope=scope).get("origin") if scope["type"] == "http" else None
        if origin is None or self.is_allowed_origin(origin):
            await super().__call__(scope, receive, send)
            return

        async def vary_on_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Vary"] = ", ".join([*headers.getlist("Vary"), "Origin"])
            await send(message)

        await self.app(scope, receive, vary_on_origin)


def install_cors(app: FastAPI, settings: ApiSettings) -> None:
    """Answer cross-origin calls from ``settings.cors_origin_list``; nothing at all when it is empty."""
    if settings.cors_origin_list:
        app.add_middleware(
            AllowedOriginsCORS,
            allow_origins=settings.cors_origin_list,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            allow_credentials=False,
        )
