"""Two API replicas on one database and Redis namespace: every token and session decision holds on both."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bodhi_api.auth.api_tokens import new_token
from tests.conftest import ADMIN_PASSWORD, Gateway
from tests.support.fake_upstream import free_port
from tests.support.processes import BodhiProcess, wait_until_serving

PASSWORD = "replica-password"


@pytest.fixture(scope="module")
def replica_url(gateway: Gateway, scratch: Path) -> Iterator[str]:
    """A second ``bodhi api`` process beside the gateway's, sharing its database and Redis prefix."""
    port = free_port()
    api = BodhiProcess(["api"], env=gateway.env | {"BODHI_PORT": str(port)}, log_path=scratch / f"replica-{port}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, api)
        yield url
    finally:
        api.stop()


@pytest.fixture
async def a(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        yield http


@pytest.fixture
async def b(replica_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replica_url, timeout=20) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await http.post("/bodhi/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    session_id = response.cookies["bodhi_session"]
    http.cookies.clear()
    return {"Cookie": f"bodhi_session={session_id}"}


async def statuses(clients: tuple[httpx.AsyncClient, ...], headers: dict[str, str]) -> list[int]:
    answers = await asyncio.gather(*(c.get("/v1/models", headers=headers) for c in clients))
    for answer in answers:
        if answer.status_code == 401:
            assert answer.json()["error"]["type"] == "authentication_error"
            assert answer.json()["error"]["code"] == "invalid_api_key"
    return [answer.status_code for answer in answers]


async def refused_everywhere_within(clients: tuple[httpx.AsyncClient, ...], token: str, seconds: float) -> float:
    """Poll both replicas until both refuse ``token``; return how long that took (fails after ``seconds``)."""
    start = time.monotonic()
    while (got := await statuses(clients, bearer(token))) != [401, 401]:
        assert time.monotonic() - start < seconds, got
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def new_user(admin_client: httpx.AsyncClient, admin: dict[str, str], role: str) -> tuple[str, str]:
    username = f"replica-{role}-{uuid.uuid4().hex[:8]}"
    response = await admin_client.post(
        "/bodhi/v1/users", headers=admin, json={"username": username, "password": PASSWORD, "role": role}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], username


async def issue(http: httpx.AsyncClient, owner: dict[str, str], scope: str = "user") -> tuple[str, str]:
    response = await http.post("/bodhi/v1/tokens", headers=owner, json={"name": "replicated", "scope": scope})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


async def test_token_decisions_hold_on_both_replicas(
    a: httpx.AsyncClient, b: httpx.AsyncClient, gateway: Gateway
) -> None:
    both = (a, b)
    admin = await login(a, gateway.admin_username, ADMIN_PASSWORD)
    _, username = await new_user(a, admin, "user")
    owner = await login(a, username, PASSWORD)

    _, token = await issue(a, owner)
    assert await statuses(both, bearer(token)) == [200, 200]

    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert await statuses(both, bearer(flipped)) == [401, 401]
    assert await statuses(both, bearer(new_token())) == [401, 401]  # well formed, never issued
    assert await statuses(both, bearer("sk-not-even-close")) == [401, 401]
    assert await statuses(both, {}) == [401, 401]

    token_id, token = await issue(b, owner)  # created on B, used on both
    assert await statuses(both, bearer(token)) == [200, 200]
    off = await b.put(f"/bodhi/v1/tokens/{token_id}", headers=owner, json={"status": "inactive"})
    assert off.status_code == 200, off.text
    assert await refused_everywhere_within(both, token, 1.0) < 1.0

    token_id, token = await issue(a, owner)
    assert await statuses(both, bearer(token)) == [200, 200]
    assert (await a.delete(f"/bodhi/v1/tokens/{token_id}", headers=owner)).status_code == 204
    assert await refused_everywhere_within(both, token, 1.0) < 1.0


async def test_owner_demoted_below_the_token_scope_loses_it_on_both_replicas(
    a: httpx.AsyncClient, b: httpx.AsyncClient, gateway: Gateway
) -> None:
    both = (a, b)
    admin = await login(a, gateway.admin_username, ADMIN_PASSWORD)
    user_id, username = await new_user(a, admin, "power_user")
    owner = await login(b, username, PASSWORD)
    _, token = await issue(b, owner, "power_user")
    assert await statuses(both, bearer(token)) == [200, 200]

    demoted = await a.put(f"/bodhi/v1/users/{user_id}/role", headers=admin, json={"role": "user"})
    assert demoted.status_code == 200, demoted.text
    assert await statuses(both, bearer(token)) == [401, 401]
    assert await statuses(both, owner) == [401, 401]  # the session made on B ended too


async def test_a_session_made_on_one_replica_works_on_the_other(
    a: httpx.AsyncClient, b: httpx.AsyncClient, gateway: Gateway
) -> None:
    admin = await login(a, gateway.admin_username, ADMIN_PASSWORD)
    _, username = await new_user(a, admin, "user")
    session = await login(a, username, PASSWORD)

    me = await b.get("/bodhi/v1/user", headers=session)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == username
    assert await statuses((a, b), session) == [200, 200]
    created = await b.post("/bodhi/v1/tokens", headers=session, json={"name": "from-b", "scope": "user"})
    assert created.status_code == 201, created.text

    assert (await b.post("/bodhi/v1/auth/logout", headers=session)).status_code == 204
    b.cookies.clear()
    assert await statuses((a, b), session) == [401, 401]
