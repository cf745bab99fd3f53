"""``/v1/responses`` and ``/v1/messages`` in-process, with a fake worker in the test's process (``fake_worker``):
the errors of each route in its own shape, ``x-api-key``, stored responses and ``previous_response_id``, and how a
stream ends or fails in the route's format when the gateway itself ends it."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bodhi_api.auth.roles import Role
from bodhi_api.inbound_formats import apply_alias_defaults
from bodhi_api.responses_store import find_response, save_response
from bodhi_shared.contract import Endpoint, EventKind, InferenceJob, StreamEvent
from bodhi_shared.event_publisher import EventPublisher
from tests.inprocess.conftest import AppFactory
from tests.inprocess.fake_worker import USAGE, FakeWorker, text_answer
from tests.inprocess.harness import Account, InProcessApp, assert_error

MODEL = "gpt-x"
MESSAGE = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
async def model(power_user: Account) -> str:
    """An API model (a provider nobody calls: the fake worker answers)."""
    await power_user.add_api_model([MODEL])
    return MODEL


def anthropic_error(response: httpx.Response, status: int, error_type: str) -> str:
    """``response`` is an error of ``status`` in Anthropic's shape; returns its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "error"}
    assert body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == error_type
    message: str = body["error"]["message"]
    assert message
    return message


def events_of(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) of each SSE frame; comments (keep-alives) left out."""
    found = []
    for block in raw.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        found.append((fields["event"], json.loads(fields["data"])))
    return found


# --- errors, in each route's shape ---------------------------------------------------------------------------


async def test_every_error_of_the_messages_route_is_in_anthropics_shape(bodhi: InProcessApp, user: Account) -> None:
    anthropic_error(await bodhi.client().post("/v1/messages", json=MESSAGE), 401, "authentication_error")
    bad_key = bodhi.client(headers={"x-api-key": "bodhi-not-a-token"})
    anthropic_error(await bad_key.post("/v1/messages", json=MESSAGE), 401, "authentication_error")
    no_max = {k: v for k, v in MESSAGE.items() if k != "max_tokens"}
    assert "max_tokens" in anthropic_error(
        await user.client.post("/v1/messages", json=no_max), 400, "invalid_request_error"
    )
    not_list = {**MESSAGE, "messages": "hi"}
    anthropic_error(await user.client.post("/v1/messages", json=not_list), 400, "invalid_request_error")
    bad_tool = {**MESSAGE, "tools": ["get_weather"]}
    assert anthropic_error(
        await user.client.post("/v1/messages", json=bad_tool), 400, "invalid_request_error"
    ).startswith("tools[0]:")
    anthropic_error(await user.client.post("/v1/messages", content=b"{not json"), 400, "invalid_request_error")
    unknown = {**MESSAGE, "model": "no-such-model"}
    anthropic_error(await user.client.post("/v1/messages", json=unknown), 404, "not_found_error")
    anthropic_error(await user.client.get("/v1/messages"), 405, "invalid_request_error")


async def test_a_messages_request_without_a_worker_is_an_overloaded_error(user: Account, model: str) -> None:
    anthropic_error(await user.client.post("/v1/messages", json=MESSAGE), 503, "overloaded_error")


async def test_the_responses_route_keeps_openai_errors(bodhi: InProcessApp, user: Account) -> None:
    assert_error(
        await bodhi.client().post("/v1/responses", json={"model": MODEL, "input": "hi"}), 401, "authentication_error"
    )
    error = assert_error(await user.client.post("/v1/responses", json={"model": MODEL}), 400, "invalid_request_error")
    assert error["param"] == "input"
    error = assert_error(
        await user.client.post("/v1/responses", json={"model": MODEL, "input": [1]}), 400, "invalid_request_error"
    )
    assert error["param"] == "input[0]"
    gone = {"model": MODEL, "input": "hi", "previous_response_id": "resp_nobody"}
    error = assert_error(
        await user.client.post("/v1/responses", json=gone), 404, "invalid_request_error", "response_not_found"
    )
    assert error["param"] == "previous_response_id"


async def test_a_token_may_come_as_x_api_key_on_the_v1_routes(bodhi: InProcessApp, user: Account) -> None:
    as_anthropic = bodhi.client(headers={"x-api-key": user.token, "anthropic-version": "2023-06-01"})
    assert (await as_anthropic.get("/v1/models")).status_code == 200
    assert (await as_anthropic.get("/bodhi/v1/user")).status_code == 401  # Bodhi's own routes: a bearer or a session


# --- stored responses ------------------------------------------------------------------------------------------


def stored(response_id: str) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "status": "completed", "model": MODEL, "output": []}


async def test_a_stored_response_is_its_owners_only_until_deleted(bodhi: InProcessApp, user: Account) -> None:
    other = await bodhi.account(Role.USER)
    response_id = f"resp_{uuid.uuid4().hex}"
    await save_response(
        bodhi.db,
        user_id=user.user.id,
        model=MODEL,
        input_items=[],
        response=stored(response_id),
        retention=timedelta(days=1),
    )

    assert (await user.client.get(f"/v1/responses/{response_id}")).json() == stored(response_id)
    assert_error(
        await other.client.get(f"/v1/responses/{response_id}"), 404, "invalid_request_error", "response_not_found"
    )
    assert_error(await other.client.delete(f"/v1/responses/{response_id}"), 404, "invalid_request_error")
    deleted = await user.client.delete(f"/v1/responses/{response_id}")
    assert deleted.json() == {"id": response_id, "object": "response", "deleted": True}
    assert_error(await user.client.get(f"/v1/responses/{response_id}"), 404, "invalid_request_error")
    assert_error(await user.client.delete(f"/v1/responses/{response_id}"), 404, "invalid_request_error")


async def test_an_expired_response_is_never_read_and_is_deleted(bodhi: InProcessApp, user: Account) -> None:
    response_id = f"resp_{uuid.uuid4().hex}"
    await save_response(
        bodhi.db,
        user_id=user.user.id,
        model=MODEL,
        input_items=[],
        response=stored(response_id),
        retention=timedelta(0),
    )

    assert_error(await user.client.get(f"/v1/responses/{response_id}"), 404, "invalid_request_error")
    assert await bodhi.db.fetchval("SELECT count(*) FROM responses WHERE id = $1", response_id) == 0
    old = f"resp_{uuid.uuid4().hex}"
    await save_response(
        bodhi.db, user_id=user.user.id, model=MODEL, input_items=[], response=stored(old), retention=timedelta(0)
    )
    await save_response(
        bodhi.db,
        user_id=user.user.id,
        model=MODEL,
        input_items=[],
        response=stored("resp_new"),
        retention=timedelta(days=1),
    )
    assert await bodhi.db.fetchval("SELECT count(*) FROM responses WHERE id = $1", old) == 0  # swept by a save


# --- through a worker ------------------------------------------------------------------------------------------


async def test_a_responses_stream_is_stored_and_continued_with_previous_response_id(
    bodhi: InProcessApp, user: Account, model: str
) -> None:
    async with FakeWorker(bodhi, text_answer("Hel", "lo")).running() as worker:
        streamed = await user.client.post(
            "/v1/responses", json={"model": model, "input": "Hi", "instructions": "Be brief.", "stream": True}
        )
        frames = events_of(streamed.content)
        final = frames[-1][1]["response"]
        follow_up = {"model": model, "input": "More", "previous_response_id": final["id"], "store": False}
        answered = await user.client.post("/v1/responses", json=follow_up)

    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert b"[DONE]" not in streamed.content
    assert frames[-1][0] == "response.completed"
    assert final["output"][0]["content"][0]["text"] == "Hello"
    kept = await find_response(bodhi.db, final["id"], user_id=user.user.id)
    assert kept is not None
    assert kept.response == final
    assert kept.input_items == [{"type": "message", "role": "user", "content": "Hi"}]
    assert kept.model == model
    # The second job got the whole conversation, without the first request's instructions.
    second = json.loads(worker.jobs[1].body)
    assert second["input"] == [
        {"type": "message", "role": "user", "content": "Hi"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
        {"type": "message", "role": "user", "content": "More"},
    ]
    assert "instructions" not in second
    assert "stream_options" not in second  # the translation asks for usage, not the API
    assert answered.status_code == 200, answered.text
    assert answered.json()["object"] == "response"
    assert answered.json()["previous_response_id"] == final["id"]
    assert await find_response(bodhi.db, answered.json()["id"], user_id=user.user.id) is None  # store: false


async def test_usage_is_recorded_for_each_format(bodhi: InProcessApp, user: Account, model: str) -> None:
    async with FakeWorker(bodhi, text_answer("Hi")).running():
        whole = await user.client.post("/v1/responses", json={"model": model, "input": "Hi"})
        message = await user.client.post("/v1/messages", json={**MESSAGE, "stream": True})
    await bodhi.resources.usage.flush()

    assert whole.status_code == 200, whole.text
    assert await find_response(bodhi.db, whole.json()["id"], user_id=user.user.id) is not None  # stored by default
    assert events_of(message.content)[-1][0] == "message_stop"
    rows = await bodhi.db.fetch("SELECT endpoint, prompt_tokens, completion_tokens, status FROM usage_records")
    assert sorted(tuple(r) for r in rows) == [
        (Endpoint.MESSAGES.value, USAGE["prompt_tokens"], USAGE["completion_tokens"], "ok"),
        (Endpoint.RESPONSES.value, USAGE["prompt_tokens"], USAGE["completion_tokens"], "ok"),
    ]


async def test_a_worker_lost_mid_stream_ends_each_stream_in_its_format(
    bodhi: InProcessApp, user: Account, model: str
) -> None:
    worker = FakeWorker(bodhi, text_answer())
    worker.answer = text_answer("Hel", then=worker.die)  # its heartbeat stops after the first chunk
    async with worker.running():
        message = await user.client.post("/v1/messages", json={**MESSAGE, "stream": True})
        await worker.beat()
        response = await user.client.post("/v1/responses", json={"model": model, "input": "Hi", "stream": True})

    names = [name for name, _ in events_of(message.content)]
    assert names[:3] == ["message_start", "content_block_start", "content_block_delta"]
    name, error = events_of(message.content)[-1]
    assert name == "error"
    assert error["error"]["type"] == "api_error"
    assert "stopped" in error["error"]["message"]
    frames = events_of(response.content)
    assert frames[0][0] == "response.created"
    assert frames[-1][0] == "response.failed"
    failed = frames[-1][1]
    assert failed["sequence_number"] == frames[-2][1]["sequence_number"] + 1
    assert failed["response"]["id"] == frames[0][1]["response"]["id"]
    assert failed["response"]["error"]["code"] == "server_error"
    assert b"[DONE]" not in response.content


async def test_a_failure_after_keep_alives_still_opens_a_responses_stream(app_factory: AppFactory) -> None:
    async def refused(job: InferenceJob, events: EventPublisher) -> StreamEvent:
        await asyncio.sleep(0.4)  # past the keep-alive interval: the response has started
        body = b'{"error": {"message": "The provider refused.", "type": "invalid_request_error"}}'
        return StreamEvent(EventKind.ERROR, 400, body)

    async with app_factory(sse_keepalive_interval=0.1) as bodhi:
        account = await bodhi.account(Role.POWER_USER)
        await account.add_api_model([MODEL], name="E")
        async with FakeWorker(bodhi, refused).running():
            response = await account.client.post("/v1/responses", json={"model": MODEL, "input": "Hi", "stream": True})
            message = await account.client.post("/v1/messages", json={**MESSAGE, "stream": True})

    assert response.status_code == 200  # started with keep-alives: the failure comes in-band
    assert response.content.startswith(b": keep-alive")
    assert [name for name, _ in events_of(response.content)] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    assert events_of(response.content)[-1][1]["response"]["error"] == {
        "code": "invalid_prompt",
        "message": "The provider refused.",
    }
    [(name, error)] = events_of(message.content)
    assert (name, error["error"]["type"]) == ("error", "invalid_request_error")


def test_a_local_aliass_defaults_apply_in_each_formats_own_names() -> None:
    params = {"temperature": 0.5, "max_tokens": 8, "stop": "END", "seed": 7, "system_prompt": "You are terse."}
    responses: dict[str, Any] = {"input": "Hi", "temperature": 1.0}
    messages: dict[str, Any] = {"messages": [], "max_tokens": 100}
    with_system: dict[str, Any] = {"input": [{"role": "developer", "content": "Be kind."}]}

    apply_alias_defaults(Endpoint.RESPONSES, responses, params)
    apply_alias_defaults(Endpoint.MESSAGES, messages, params)
    apply_alias_defaults(Endpoint.RESPONSES, with_system, params)

    assert responses == {"input": "Hi", "temperature": 1.0, "max_output_tokens": 8, "instructions": "You are terse."}
    assert messages == {
        "messages": [],
        "max_tokens": 100,  # the request's own wins
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "system": "You are terse.",
    }
    assert "instructions" not in with_system  # the request has a system prompt of its own
