"""Builds the FastAPI application of an API replica."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI

from bodhi_api.access_log import AccessLogMiddleware
from bodhi_api.body_limit import BodyLimitMiddleware
from bodhi_api.cors import install_cors
from bodhi_api.error_handlers import install_error_handlers
from bodhi_api.forwarded import ForwardedHeadersMiddleware
from bodhi_api.openapi import install_openapi
from bodhi_api.request_id import RequestIdMiddleware
from bodhi_api.resources import Resources, open_resources
from bodhi_api.routes import (
    api_models,
    auth,
    health,
    inference,
    local_aliases,
    messages,
    model_routers,
    models,
    prices,
    responses,
    setup,
    tokens,
    usage,
    users,
)
from bodhi_api.settings import ApiSettings
from bodhi_api.ui import install_ui
from bodhi_shared.metrics_server import serving_metrics

# Every router the app serves: the authorization-matrix test reads its route table from here.
ROUTERS = tuple(
    module.router
    for module in (
        health,
        setup,
        auth,
        users,
        tokens,
        api_models,
        local_aliases,
        model_routers,
        models,
        inference,
        responses,
        messages,
        usage,
        prices,
    )
)


def serving_api_metrics(settings: ApiSettings, resources: Resources) -> contextlib.AbstractAsyncContextManager[None]:
    """``BODHI_METRICS_PORT``: the replica's metrics on a port of their own, read fresh from Redis at each scrape."""

    async def refresh() -> None:
        await resources.metrics.observe_backends(
            resources.redis, resources.keys, heartbeat_ttl=settings.heartbeat_ttl, now=time.time()
        )

    host = settings.metrics_host or settings.host
    return serving_metrics(settings.metrics_port, host=host, registry=resources.metrics.registry, refresh=refresh)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """An app for ``settings`` (read from the environment when not given: ``bodhi api`` calls this at startup)."""
    resolved = settings or ApiSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(resolved) as resources, serving_api_metrics(resolved, resources):
            app.state.resources = resources
            yield

    # The OpenAPI document describes the routes and bodies (no data, no secret); no interactive docs pages, which
    # would load scripts from a CDN.
    app = FastAPI(
        title="Bodhi", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/openapi.json"
    )
    install_error_handlers(app)
    # Added before RequestIdMiddleware, so it runs inside it: a 413 carries the request's ids too.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=resolved.max_body_bytes)
    install_cors(app, resolved)  # BODHI_CORS_ORIGINS: outside the body limit (a 413 is readable), inside the log
    app.add_middleware(AccessLogMiddleware)  # inside RequestIdMiddleware (its line has the id), outside the rest
    app.add_middleware(RequestIdMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    # The web UI: HTML for browsers whose data comes from ROUTERS (checked there), so its pages are not in ROUTERS.
    install_ui(app)
    # Added last, so outermost: every layer sees the client's address, scheme and host, from trusted proxies only.
    app.add_middleware(ForwardedHeadersMiddleware, trusted_proxies=resolved.trusted_proxy_networks)
    install_openapi(app, ROUTERS)
    return app
