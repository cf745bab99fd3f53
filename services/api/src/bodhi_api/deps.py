"""Typed dependencies: routes declare what they need with these aliases."""

from typing import Annotated

from fastapi import Depends, Request

from bodhi_api.resources import Resources


# Async on purpose: FastAPI runs a plain `def` dependency in a thread pool, which on the hot path cost more than
# everything else the API does per request.
async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def get_request_id(request: Request) -> str:
    """The server's own id of this request (``request_id.py``): the only one that may route jobs and streams."""
    request_id: str = request.scope["state"]["request_id"]
    return request_id


async def get_client_request_id(request: Request) -> str | None:
    """The client's ``X-Request-Id``, if acceptable: for logs and the provider only, never for routing."""
    client_request_id: str | None = request.scope["state"].get("client_request_id")
    return client_request_id


ResourcesDep = Annotated[Resources, Depends(get_resources)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
ClientRequestIdDep = Annotated[str | None, Depends(get_client_request_id)]
