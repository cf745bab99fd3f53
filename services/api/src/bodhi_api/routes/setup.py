"""First run: ``GET /bodhi/v1/info`` says whether setup is needed; ``POST /bodhi/v1/setup`` creates the admin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bodhi_api.auth.principal import check_same_origin
from bodhi_api.auth.users import any_user_exists, create_first_admin
from bodhi_api.deps import ResourcesDep
from bodhi_api.http_errors import Conflict
from bodhi_shared.clean_text import CleanLine, CleanText

router = APIRouter(tags=["setup"])

VERSION = "0.1.0"


class SetupRequest(BaseModel):
    # Lengths and spaces are checked by ``users.check_credentials_shape``; what Postgres cannot store, here.
    username: CleanLine
    password: CleanText


@router.get("/bodhi/v1/info")
async def info(resources: ResourcesDep) -> dict[str, str]:
    ready = await any_user_exists(resources.db)
    return {"version": VERSION, "status": "ready" if ready else "setup"}


@router.post("/bodhi/v1/setup", status_code=201)
async def setup(body: SetupRequest, request: Request, resources: ResourcesDep) -> JSONResponse:
    check_same_origin(request)
    user = await create_first_admin(resources.db, username=body.username, password=body.password)
    if user is None:
        raise Conflict("Setup is already done. Log in, or ask an admin for an account.")
    return JSONResponse(user.public(), status_code=201)
