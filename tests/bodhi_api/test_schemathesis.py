"""Schemathesis against ``/openapi.json``: every operation, called as each kind of caller, with generated valid and
invalid input, answers without a 5xx, every error in the OpenAI shape, every answer as the document says
(status, content type, schema, headers; 405 with ``Allow`` for undocumented methods).

The gateway is one of its own: its own database and Redis namespace (fuzzed creations touch no other test's data)
and no worker, so a request that would reach a provider stops at a documented 503 instead of waiting on a random
host. Seeded and deterministic, with a bounded number of examples per operation, so a failure reproduces and the
run stays short.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from schemathesis import APIOperation, Case, CheckContext, Response
from schemathesis.config import SchemathesisConfig

from bodhi_api.app import create_app
from bodhi_api.auth.sessions import COOKIE_NAME
from bodhi_api.settings import ApiSettings
from bodhi_shared.migrate import migrate_dsn
from tests.conftest import gateway_env
from tests.support.backing import create_database, drop_database, new_name
from tests.support.fake_upstream import free_port
from tests.support.processes import BodhiProcess, create_user_and_token, wait_until_serving

PASSWORD = "fuzz-pa55word-planted"
AnyCase = Case[APIOperation[Any, Any, Any, Any]]
CALLERS = ("user token", "power_user token", "admin token", "admin session")
# Routes whose ids are not UUID-typed in their path shadow their siblings: `PUT /bodhi/v1/models/api/formats` is a
# PUT of the API model `formats` (404), so `Allow` on these paths rightly names the id route's methods too, which
# the document lists under `/bodhi/v1/models/api/{api_model_id}`. Reported for routes/api_models.py.
SHADOWED_BY_AN_ID_ROUTE = [
    "/bodhi/v1/models/api/formats",
    "/bodhi/v1/models/api/fetch-models",
    "/bodhi/v1/models/api/test",
]
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 1135,
        # The callers' credentials are sent by the test, not generated from the security schemes.
        "generation": {
            "max-examples": 20,
            "deterministic": True,
            "database": "none",
            "with-security-parameters": False,
        },
        # Stateful runs chain calls (create, then use the id); each operation here stands alone.
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # 400 also answers rules no schema states (a GGUF file that exists, an address providers may have, a
            # username of 1 to 64 characters once stripped): the document lists 400 wherever there is input, so a
            # schema-valid request may get it. Schema-invalid ones must still be refused (negative_data_rejection).
            "positive_data_acceptance": {"enabled": False},
        },
        "operations": [
            {"include-path": SHADOWED_BY_AN_ID_ROUTE, "checks": {"allow_header_conformance": {"enabled": False}}},
            # No worker here: the readiness probe rightly answers its documented 503 (its report, not an error).
            {
                "include-path": "/ready",
                "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}},
            },
        ],
    }
)


@dataclass
class FuzzTarget:
    base_url: str
    api: BodhiProcess
    callers: dict[str, dict[str, str]]  # caller kind -> the headers that authenticate it


@pytest.fixture(scope="module")
async def fuzz_database(postgres_server_url: str) -> AsyncIterator[str]:
    name = new_name("bodhi_fuzz")
    url = await create_database(postgres_server_url, name)
    await migrate_dsn(url)
    yield url
    await drop_database(postgres_server_url, name)


@pytest.fixture(scope="module")
def fuzz_target(fuzz_database: str, redis_url: str, scratch: Path) -> Iterator[FuzzTarget]:
    port, prefix = free_port(), new_name("bodhitest-fuzz")
    env = gateway_env(
        database_url=fuzz_database, redis_url=redis_url, redis_prefix=prefix, home=scratch / "fuzz-home", port=port
    )
    env["BODHI_ALLOW_PRIVATE_UPSTREAMS"] = "false"  # the document's rules, not the test run's loophole
    api = BodhiProcess(["api"], env=env, log_path=scratch / "fuzz-api.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base_url, api)
        callers = {}
        for role in ("user", "power_user", "admin"):
            scope = "user" if role == "user" else "power_user"  # a token's scope is at most power_user
            token = create_user_and_token(env, username=f"fuzz-{role}", password=PASSWORD, role=role, scope=scope)
            callers[f"{role} token"] = {"Authorization": f"Bearer {token}"}
        # Managing users needs a manager: only a session reaches that role.
        login = {"username": "fuzz-admin", "password": PASSWORD}
        session = httpx.post(f"{base_url}/bodhi/v1/auth/login", json=login, timeout=20)
        assert session.status_code == 200, session.text
        callers["admin session"] = {"Cookie": f"{COOKIE_NAME}={session.cookies[COOKIE_NAME]}"}
        yield FuzzTarget(base_url=base_url, api=api, callers=callers)
    finally:
        api.stop()
        delete_namespace(redis_url, prefix)


def delete_namespace(redis_url: str, prefix: str) -> None:
    """The fuzzed sessions and login counters, gone with the gateway."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# The document the API serves, built in-process (the same code; ``test_the_served_document_is_the_one_fuzzed``
# holds the served one to it): schemathesis needs it when pytest collects, before any gateway runs.
DOCUMENT = create_app(ApiSettings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def test_the_served_document_is_the_one_fuzzed(fuzz_target: FuzzTarget) -> None:
    served = httpx.get(f"{fuzz_target.base_url}/openapi.json", timeout=10)
    assert served.json() == json.loads(json.dumps(DOCUMENT))


def openai_error_shape(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """Every 4xx and 5xx Bodhi answers is ``{"error": {"message", "type", "param", "code"}}``; on ``/v1/messages``
    Anthropic's ``{"type": "error", "error": {"type", "message"}}``."""
    if response.status_code < 400 or case.operation.path in ("/health", "/ready"):
        return None  # /health and /ready answer 503 with their own report, as documented
    body = json.loads(response.content)
    if case.operation.path == "/v1/messages":
        assert set(body) == {"type", "error"}, body
        assert body["type"] == "error", body
        assert set(body["error"]) == {"type", "message"}, body
        assert isinstance(body["error"]["message"], str), body
        assert body["error"]["message"], body
        return True
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str), body
    assert body["error"]["message"], body
    return True


@pytest.mark.timeout(240)
@schema.parametrize()
def test_every_operation_answers_as_documented(case: AnyCase, fuzz_target: FuzzTarget) -> None:
    """Each generated request, sent as every kind of caller: the same input meets each role's checks."""
    for caller in CALLERS:
        if caller == "admin session" and case.operation.label == "POST /bodhi/v1/auth/logout":
            continue  # it would end the session every later case is sent with
        try:
            case.call_and_validate(
                base_url=fuzz_target.base_url,
                headers=fuzz_target.callers[caller],
                additional_checks=[openai_error_shape],
            )
        except BaseException as exc:
            exc.add_note(f"called as: {caller}")
            raise
