"""Request ids: the server makes its own for every request; a client's ``X-Request-Id`` is echoed, never routed.

If the client's id routed the job, stream and cancel messages, two users sending the same one would get each
other's answers, and one could cancel the other's job by reusing its id and hanging up.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field

import httpx

from tests.conftest import ADMIN_PASSWORD, Gateway, RegisterUpstream
from tests.support.fake_upstream import FakeUpstream, Script, chunk_text

SERVER_ID = re.compile(r"^[0-9a-f]{32}$")
PASSWORD = "request-id-password"
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass
class Streamed:
    headers: httpx.Headers | None = None
    texts: list[str] = field(default_factory=list)
    done: bool = False


async def new_user_token(http: httpx.AsyncClient, admin: dict[str, str]) -> str:
    """A new user (role user) and a token of theirs, made from their own session."""
    username = f"rid-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/bodhi/v1/users", headers=admin, json={"username": username, "password": PASSWORD, "role": "user"}
    )
    assert created.status_code == 201, created.text
    session = await login(http, username, PASSWORD)
    issued = await http.post("/bodhi/v1/tokens", headers=session, json={"name": "rid", "scope": "user"})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"])


async def login(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await http.post("/bodhi/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    http.cookies.clear()
    return {"Cookie": f"bodhi_session={response.cookies['bodhi_session']}"}


async def two_user_tokens(gateway: Gateway) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        admin = await login(http, gateway.admin_username, ADMIN_PASSWORD)
        return await new_user_token(http, admin), await new_user_token(http, admin)


async def stream(
    gateway: Gateway,
    token: str,
    model: str,
    *,
    request_id: str,
    into: Streamed,
    hang_up_after_first: bool = False,
) -> Streamed:
    """Stream one chat completion with ``X-Request-Id: request_id`` into ``into`` (readable while it runs)."""
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    body = {"model": model, "messages": MESSAGES, "stream": True}
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http,
        http.stream("POST", "/v1/chat/completions", headers=headers, json=body) as response,
    ):
        assert response.status_code == 200, await response.aread()
        into.headers = response.headers
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                into.done = True
            elif line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                assert "error" not in event, event
                content = event["choices"][0]["delta"].get("content") if event.get("choices") else None
                if content:
                    into.texts.append(content)
                    if hang_up_after_first:
                        return into  # leaving the block closes the connection mid-stream
    return into


def assert_ids(headers: httpx.Headers | None, client_id: str) -> str:
    """The client's id echoed, the server's own beside it; returns the server's."""
    assert headers is not None
    assert headers["x-request-id"] == client_id
    server_id = headers["x-bodhi-request-id"]
    assert SERVER_ID.match(server_id)
    return server_id


def test_every_request_gets_a_server_id_of_its_own(gateway: Gateway) -> None:
    sent = [httpx.get(f"{gateway.base_url}/ping", headers={"X-Request-Id": "same-id"}, timeout=10) for _ in range(2)]
    plain = httpx.get(f"{gateway.base_url}/ping", timeout=10)
    refused = httpx.get(f"{gateway.base_url}/ping", headers={"X-Request-Id": "x" * 129}, timeout=10)

    server_ids = [assert_ids(response.headers, "same-id") for response in sent]
    assert server_ids[0] != server_ids[1]
    for response in (plain, refused):  # no acceptable client id: both headers carry the server's id
        assert SERVER_ID.match(response.headers["x-bodhi-request-id"])
        assert response.headers["x-request-id"] == response.headers["x-bodhi-request-id"]


async def test_two_users_sending_the_same_request_id_each_get_their_own_stream(
    gateway: Gateway, register_upstream: RegisterUpstream
) -> None:
    scripts = {"a": Script(chunks=6, delay=0.2, text="alpha"), "b": Script(chunks=6, delay=0.2, text="bravo")}
    models = {who: await register_upstream(script) for who, script in scripts.items()}
    tokens = dict(zip(("a", "b"), await two_user_tokens(gateway), strict=True))
    shared = f"shared-{uuid.uuid4().hex}"

    got = {who: Streamed() for who in scripts}
    await asyncio.wait_for(
        asyncio.gather(
            *(stream(gateway, tokens[who], models[who], request_id=shared, into=got[who]) for who in scripts)
        ),
        timeout=30,  # before the fix one of them waited for events that went to the other
    )

    for who, script in scripts.items():
        assert got[who].texts == [chunk_text(script, i) for i in range(script.chunks)], who
        assert got[who].done, who
    server_ids = {assert_ids(got[who].headers, shared) for who in scripts}
    assert len(server_ids) == 2
    deadline = time.monotonic() + 5  # the API logs which server id carried the client's id
    while not all(
        f"request {s}: POST /v1/chat/completions has X-Request-Id {shared}" in gateway.logs() for s in server_ids
    ):
        assert time.monotonic() < deadline, "the client's id is not in the logs next to the server's"
        await asyncio.sleep(0.1)


async def test_hanging_up_with_another_requests_id_does_not_cancel_it(
    gateway: Gateway, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream
) -> None:
    steady = Script(chunks=10, delay=0.25, text="steady")
    leaver = Script(chunks=20, delay=0.25, text="leaver")
    steady_model, leaver_model = await register_upstream(steady), await register_upstream(leaver)
    victim_token, other_token = await two_user_tokens(gateway)
    shared = f"victim-{uuid.uuid4().hex}"

    victim = Streamed()
    victim_task = asyncio.ensure_future(stream(gateway, victim_token, steady_model, request_id=shared, into=victim))
    deadline = time.monotonic() + 10
    while not victim.texts:
        assert not victim_task.done(), victim_task.result()
        assert time.monotonic() < deadline, "the victim's stream did not start"
        await asyncio.sleep(0.02)
    other = await stream(
        gateway, other_token, leaver_model, request_id=shared, into=Streamed(), hang_up_after_first=True
    )
    assert other.texts == [chunk_text(leaver, 0)]

    await asyncio.wait_for(victim_task, timeout=20)
    assert victim.texts == [chunk_text(steady, i) for i in range(steady.chunks)]
    assert victim.done
    assert fake_upstream.requests_for(steady_model)[0].client_gone_at is None
    deadline = time.monotonic() + 10  # the one that hung up had its own job cancelled, by the server's id
    while fake_upstream.requests_for(leaver_model)[0].client_gone_at is None:
        assert time.monotonic() < deadline, "hanging up did not cancel the leaver's own job"
        await asyncio.sleep(0.05)
