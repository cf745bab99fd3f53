"""The small routes in-process: liveness, readiness, the OpenAPI document, usage, metrics, and the error shapes
every route shares (unknown routes, wrong methods, bad bodies, large bodies, request ids)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from bodhi_api.auth.roles import Role
from bodhi_api.usage import UsageRecord
from bodhi_shared.redis_keys import REMOTE_WORKER_KIND
from tests.inprocess.conftest import AppFactory
from tests.inprocess.harness import Account, InProcessApp, assert_error


async def test_ping_and_health(bodhi: InProcessApp) -> None:
    anonymous = bodhi.client()
    assert (await anonymous.get("/ping")).json() == {"message": "pong"}

    health = await anonymous.get("/health")

    assert health.status_code == 200, health.text
    body = health.json()
    assert (body["status"], body["postgres"], body["redis"]) == ("ok", "ok", "ok")
    assert body["workers"] == {"remote": 0, "local": 0}  # none in this test's prefix
    assert list(body["listeners"].values()) == ["up"]


async def test_health_counts_the_workers_of_its_own_prefix(bodhi: InProcessApp) -> None:
    keys = bodhi.resources.keys
    now = datetime.now(UTC).timestamp()
    await bodhi.resources.redis.zadd(keys.workers(REMOTE_WORKER_KIND), {"remote-a": now, "remote-stale": now - 600})

    assert (await bodhi.client().get("/health")).json()["workers"]["remote"] == 1


async def test_the_openapi_document_describes_the_api(bodhi: InProcessApp) -> None:
    response = await bodhi.client().get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Bodhi"
    paths = document["paths"]
    assert {"/v1/chat/completions", "/v1/models", "/bodhi/v1/models/api", "/bodhi/v1/models/files"} <= set(paths)
    assert not any(path.startswith("/ui/") for path in paths)  # the pages are not API
    login = paths["/bodhi/v1/auth/login"]["post"]["responses"]
    assert {"400", "401", "429"} <= set(login)
    assert "422" not in login  # Bodhi answers invalid input with 400, not FastAPI's 422
    assert (await bodhi.client().get("/openapi.json")).json() == document  # the same on every call


async def test_usage_sums_per_group_and_shows_users_their_own(bodhi: InProcessApp, user: Account) -> None:
    manager = await bodhi.session_client(await bodhi.create_user(Role.MANAGER))
    other_user = uuid.uuid4()
    now = datetime.now(UTC)

    def record(user_id: uuid.UUID, model: str, tokens: int, *, status: str = "ok", ago: float = 0) -> UsageRecord:
        return UsageRecord(
            created_at=now - timedelta(hours=ago),
            request_id=uuid.uuid4().hex,
            user_id=user_id,
            token_id=None,
            endpoint="/v1/chat/completions",
            model=model,
            api_model_id=None,
            prompt_tokens=tokens,
            completion_tokens=1,
            total_tokens=tokens + 1,
            ttft_ms=10.0,
            duration_ms=20.0,
            status=status,
            http_status=200 if status == "ok" else 502,
        )

    for entry in (
        record(user.user.id, "alpha", 10),
        record(user.user.id, "alpha", 5, status="upstream_error"),
        record(user.user.id, "beta", 1, ago=48),
        record(other_user, "alpha", 100),
    ):
        bodhi.resources.usage.record(entry)  # buffered: the usage route flushes it first

    own = (await user.client.get("/bodhi/v1/usage")).json()
    everyone = (await manager.get("/bodhi/v1/usage")).json()
    recent = (await user.client.get("/bodhi/v1/usage", params={"since": (now - timedelta(hours=1)).isoformat()})).json()
    by_user = (await manager.get("/bodhi/v1/usage", params={"group_by": "user"})).json()

    assert own["scope"] == "own"
    assert [(r["key"], r["requests"], r["prompt_tokens"], r["failed"]) for r in own["data"]] == [
        ("alpha", 2, 15, 1),
        ("beta", 1, 1, 0),
    ]
    assert everyone["scope"] == "all"
    assert [(r["key"], r["requests"], r["total_tokens"]) for r in everyone["data"]] == [
        ("alpha", 3, 118),
        ("beta", 1, 2),
    ]
    assert [r["key"] for r in recent["data"]] == ["alpha"]
    assert {r["key"]: r["requests"] for r in by_user["data"]} == {str(user.user.id): 3, str(other_user): 1}
    bad = await user.client.get("/bodhi/v1/usage", params={"group_by": "password"})
    assert assert_error(bad, 400, "invalid_request_error")["param"].endswith("group_by")
    bad_date = await user.client.get("/bodhi/v1/usage", params={"since": "yesterday"})
    assert assert_error(bad_date, 400, "invalid_request_error")["param"].endswith("since")
    for number in ("0.5", "1764547200"):  # a Unix time is not the RFC 3339 the document says
        unix = await user.client.get("/bodhi/v1/usage", params={"until": number})
        assert "RFC 3339" in assert_error(unix, 400, "invalid_request_error")["message"]
    assert_error(await bodhi.client().get("/bodhi/v1/usage"), 401, "authentication_error")


async def test_metrics_are_prometheus_text_for_signed_in_callers(bodhi: InProcessApp, user: Account) -> None:
    response = await user.client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert f'queue="{bodhi.resources.keys.remote_queue}"' in response.text
    assert_error(await bodhi.client().get("/metrics"), 401, "authentication_error")


async def test_unknown_routes_and_wrong_methods(bodhi: InProcessApp, user: Account) -> None:
    unknown = await user.client.get("/bodhi/v1/nothing-here")
    assert "/docs" in assert_error(unknown, 404, "invalid_request_error", "not_found")["message"]
    wrong = await user.client.delete("/v1/models")
    assert_error(wrong, 405, "invalid_request_error", "method_not_allowed")
    assert wrong.headers["allow"] == "GET"
    both = await user.client.patch("/bodhi/v1/tokens")
    assert set(both.headers["allow"].split(", ")) == {"GET", "POST"}


@pytest.mark.parametrize(
    ("content", "content_type", "says"),
    [
        (b'{"name": ', "application/json", "JSON decode error"),
        (b"[1, 2]", "application/json", "valid dictionary"),
        (b"name=x", "application/x-www-form-urlencoded", "Content-Type: application/json"),
        (b"\xff\xfe", "application/json", "JSON"),
    ],
)
async def test_bodies_that_are_not_json_objects_are_400s(
    bodhi: InProcessApp, content: bytes, content_type: str, says: str
) -> None:
    browser = await bodhi.session_client(await bodhi.create_user(Role.USER))

    response = await browser.post("/bodhi/v1/tokens", content=content, headers={"Content-Type": content_type})

    error = assert_error(response, 400, "invalid_request_error")
    assert says in error["message"]
    assert (await browser.get("/bodhi/v1/tokens")).json()["data"] == []


async def test_a_body_over_the_limit_is_a_413(app_factory: AppFactory) -> None:
    async with app_factory(max_body_bytes=1024) as app:
        account = await app.account(Role.POWER_USER)
        response = await account.client.post(
            "/bodhi/v1/models/api",
            json={"base_url": "https://a.example.com/v1", "api_key": "k" * 2000, "models": ["m"]},
        )
        small = await account.client.post("/bodhi/v1/tokens", json={"name": "fits"})
    assert_error(response, 413, "invalid_request_error", "request_too_large")
    assert small.status_code == 403  # read and answered: a token of a power_user manages no tokens


async def test_every_response_carries_request_ids(bodhi: InProcessApp) -> None:
    anonymous = bodhi.client()
    own = await anonymous.get("/ping")
    server_id = own.headers["x-bodhi-request-id"]
    assert own.headers["x-request-id"] == server_id
    assert len(server_id) == 32

    given = await anonymous.get("/bodhi/v1/user", headers={"X-Request-Id": "client-trace.42"})
    assert given.status_code == 401  # errors too
    assert given.headers["x-request-id"] == "client-trace.42"
    assert given.headers["x-bodhi-request-id"] != "client-trace.42"
    refused = await anonymous.get("/ping", headers={"X-Request-Id": "has spaces"})
    assert refused.headers["x-request-id"] == refused.headers["x-bodhi-request-id"]
