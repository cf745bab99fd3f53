"""Typed dependencies: routes declare what they need with these aliases."""

from typing import Annotated

from fastapi import Depends, Request

from bodhi_api.resources import Resources


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


def get_request_id(request: Request) -> str:
    request_id: str = request.scope["state"]["request_id"]
    return request_id


ResourcesDep = Annotated[Resources, Depends(get_resources)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
