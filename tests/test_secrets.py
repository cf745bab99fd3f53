"""Secrets stay secret: a provider key, a password and tokens planted here run through every flow, then every
log line, response, metric, database value and Redis value of the gateway is searched for them.

What may hold them, and nothing else: the provider (it must get its key), the one response that shows a new
token (once, by design), and ``api_models.sealed_key`` (ciphertext; checked not to hold the plaintext bytes).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from bodhi_api.auth.api_tokens import new_token
from tests.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.processes import create_user_and_token

API = "/bodhi/v1/models/api"
RUN = uuid.uuid4().hex[:12]
# Alphanumeric cores, so that no encoding (JSON, URL, repr) hides them from a plain substring search; the key
# hint (``sk-...`` + the last 4) shows neither core.
KEY_CORE = f"PlantedProviderKey{RUN}"
PROVIDER_KEY = f"sk-{KEY_CORE}-tail"
TYPED_KEY_CORE = f"PlantedTypedKey{RUN}"
TYPED_KEY = f"sk-{TYPED_KEY_CORE}-tail"  # typed into the form's checks, never stored
PASSWORD = f"PlantedPassword{RUN}"
OTHER_KEY = "sk-the-key-the-provider-wants-" + "x" * 8


@dataclass
class Seen:
    """Everything the gateway answered this test, except the one body that shows a new token."""

    bodies: list[bytes] = field(default_factory=list)

    async def keep(self, response: httpx.Response) -> None:
        await response.aread()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "set-cookie")
        self.bodies.append(headers.encode() + b"\n\n" + response.content)


@pytest.fixture
def provider() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


def client_for(gateway: Gateway, seen: Seen, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gateway.base_url,
        timeout=30,
        event_hooks={"response": [seen.keep]},
        **kwargs,  # type: ignore[arg-type]
    )


async def chat(http: httpx.AsyncClient, model: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    return await http.post("/v1/chat/completions", json=body)


async def log_in(gateway: Gateway, seen: Seen, *, username: str, password: str) -> httpx.Response:
    async with client_for(gateway, seen, headers={"Origin": gateway.base_url}) as http:
        return await http.post("/bodhi/v1/auth/login", json={"username": username, "password": password})


async def run_account_flows(gateway: Gateway, seen: Seen, *, victim: str, other: str) -> tuple[str, str]:
    """Create the victim (password planted), log in right and wrong, make a token from the session.

    Returns the session id and the token."""
    assert (await log_in(gateway, seen, username=victim, password=PASSWORD)).status_code == 200
    for username, password in ((other, PASSWORD), (f"nobody-{RUN}", PASSWORD), (PASSWORD, "not-the-password")):
        failed = await log_in(gateway, seen, username=username, password=password)
        assert failed.status_code == 401, failed.text
    session = await log_in(gateway, seen, username=victim, password=PASSWORD)
    session_id = session.cookies["bodhi_session"]
    async with httpx.AsyncClient(
        base_url=gateway.base_url, headers={"Origin": gateway.base_url}, cookies={"bodhi_session": session_id}
    ) as http:  # its answer holds the new token: the one body left out of the search
        created = await http.post("/bodhi/v1/tokens", json={"name": "planted", "scope": "power_user"})
    assert created.status_code == 201, created.text
    return session_id, str(created.json()["token"])


async def run_api_model_flows(http: httpx.AsyncClient, provider: FakeUpstream) -> list[str]:
    """Create, edit, test, fetch models: with the stored key, a typed one, and a provider that echoes keys."""
    models = [f"ok-{RUN}", f"refuses-{RUN}", f"breaks-{RUN}"]
    provider.scripts[models[0]] = Script()
    provider.scripts[models[1]] = Script(status=400, echo_key=True)
    provider.scripts[models[2]] = Script(chunks=3, error_after=1, echo_key=True)
    body = {"name": f"planted-{RUN}", "base_url": provider.base_url, "api_key": PROVIDER_KEY, "models": models}
    created = await http.post(API, json=body)
    assert created.status_code == 201, created.text
    row = created.json()["id"]
    assert (await http.put(f"{API}/{row}", json=body)).status_code == 200
    assert (await http.patch(f"{API}/{row}", json={"name": f"renamed-{RUN}"})).status_code == 200
    assert (await http.patch(f"{API}/{row}", json={"api_key": PROVIDER_KEY})).status_code == 200
    assert (await http.get(f"{API}/{row}")).status_code == 200
    assert (await http.get(API)).status_code == 200
    stored, typed = {"id": row}, {"base_url": provider.base_url, "api_key": TYPED_KEY}
    for target in (stored, typed, {"id": row, "api_key": TYPED_KEY}):
        assert (await http.post(f"{API}/test", json=target | {"model": models[0]})).status_code == 200
        assert (await http.post(f"{API}/test", json=target | {"model": models[1]})).status_code == 200
        assert (await http.post(f"{API}/fetch-models", json=target)).status_code == 200
    provider.models_required_key = OTHER_KEY  # a provider refusing the key, repeating it in its message
    for target in (stored, typed):
        refused = await http.post(f"{API}/fetch-models", json=target)
        assert refused.status_code in (200, 502), refused.text
    provider.models_required_key = None
    return models


async def run_chat_flows(http: httpx.AsyncClient, models: list[str]) -> None:
    ok, refuses, breaks = models
    for stream in (False, True):
        answered = await chat(http, ok, stream=stream)
        assert answered.status_code == 200, answered.text
        assert (await chat(http, refuses, stream=stream)).status_code == 400
    assert (await chat(http, breaks, stream=True)).status_code == 200  # in-band error after the first chunk
    assert (await chat(http, breaks, stream=False)).status_code == 200  # not streamed: the fake answers in full


async def run_token_flows(gateway: Gateway, seen: Seen, *, token: str, session_id: str) -> None:
    """Use the token, then bearers that are not Bodhi tokens: an altered one, an unknown one, the provider key."""
    async with client_for(gateway, seen, headers={"Authorization": f"Bearer {token}"}) as http:
        assert (await http.get("/bodhi/v1/user")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.get("/bodhi/v1/usage")).status_code == 200
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bearer in (altered, new_token(), PROVIDER_KEY, PASSWORD):
        async with client_for(gateway, seen, headers={"Authorization": f"Bearer {bearer}"}) as http:
            assert (await http.get("/bodhi/v1/user")).status_code == 401
    async with client_for(gateway, seen, cookies={"bodhi_session": session_id}) as http:
        assert (await http.get("/bodhi/v1/user")).status_code == 200
        assert (await http.get("/bodhi/v1/models")).status_code == 200


async def background_writes_landed(db: asyncpg.Connection, models: list[str], username: str) -> None:
    """Wait for what the API writes off the request path (usage records every second, the token's last use), so
    the database is searched with them in it."""
    chats = 2 * len(models)  # run_chat_flows: each model streamed and not
    for _ in range(100):
        records = await db.fetchval("SELECT count(*) FROM usage_records WHERE model = ANY($1::text[])", models)
        used = await db.fetchval(
            "SELECT count(*) FROM api_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE u.username = $1 AND t.last_used_at IS NOT NULL",
            username,
        )
        if records >= chats and used:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"after 10 s: {records} of {chats} usage records, {used} token uses recorded")


def hits(secrets: dict[str, str], text: bytes | str) -> list[str]:
    raw = text if isinstance(text, bytes) else text.encode()
    return [name for name, secret in secrets.items() if secret.encode() in raw]


async def database_hits(db: asyncpg.Connection, secrets: dict[str, str]) -> list[str]:
    found = []
    tables = await db.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    )
    assert {"api_models", "usage_records", "users", "api_tokens"} <= {t["table_name"] for t in tables}
    for table in tables:
        name = f'"{table["table_schema"]}"."{table["table_name"]}"'
        for row in await db.fetch(f"SELECT * FROM {name}"):  # names from the catalogue
            for column, value in row.items():
                raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                # The ciphertext column is random bytes: only the plaintext bytes themselves would be a leak.
                found += [f"{name}.{column}: {hit}" for hit in hits(secrets, raw)]
    return found


async def redis_hits(redis_url: str, prefix: str, secrets: dict[str, str]) -> tuple[list[str], int]:
    """The hits in every key and value under the run's prefix and arq's; and how many keys were read."""
    found, read = [], 0
    client = aioredis.Redis.from_url(redis_url)
    try:
        for pattern in (f"{prefix}:*", "arq:*"):
            async for key in client.scan_iter(match=pattern, count=1000):
                read += 1
                found += [f"key {key!r}: {hit}" for hit in hits(secrets, key)]
                found += [f"value of {key!r}: {hit}" for hit in hits(secrets, await redis_value(client, key))]
    finally:
        await client.aclose()
    return found, read


async def redis_value(client: aioredis.Redis, key: bytes) -> bytes:
    """Every member of ``key``, whatever its type, as one byte string."""
    name = key.decode()
    kind = (await client.type(name)).decode()
    parts: list[bytes] = []
    if kind == "string":
        parts = [await client.get(name) or b""]
    elif kind == "hash":
        items: dict[bytes, bytes] = await client.hgetall(name)  # type: ignore[misc]  # sync|async union
        parts = [k + b"=" + v for k, v in items.items()]
    elif kind == "set":
        parts = list(await client.smembers(name))  # type: ignore[misc]
    elif kind == "zset":
        parts = [member for member, _ in await client.zrange(name, 0, -1, withscores=True)]
    elif kind == "list":
        parts = list(await client.lrange(name, 0, -1))  # type: ignore[misc]
    return b"\n".join(parts)  # nothing: gone meanwhile, or a type Bodhi does not use


async def test_planted_secrets_appear_nowhere(
    gateway: Gateway,
    provider: FakeUpstream,
    db: asyncpg.Connection,
    redis_url: str,
    redis_prefix: str,
) -> None:
    seen = Seen()
    admin_name, admin_password = f"admin-{RUN}", f"admin-{RUN}-pw"
    await asyncio.to_thread(create_user_and_token, gateway.env, username=admin_name, password=admin_password)
    admin_session = (await log_in(gateway, seen, username=admin_name, password=admin_password)).cookies
    victim, other = f"victim-{RUN}", f"other-{RUN}"
    async with client_for(gateway, seen, headers={"Origin": gateway.base_url}, cookies=admin_session) as admin:
        for username in (victim, other):
            password = PASSWORD if username == victim else f"other-{RUN}-pw"
            body = {"username": username, "password": password, "role": "power_user"}
            assert (await admin.post("/bodhi/v1/users", json=body)).status_code == 201
    session_id, token = await run_account_flows(gateway, seen, victim=victim, other=other)
    async with client_for(gateway, seen, headers={"Authorization": f"Bearer {token}"}) as http:
        models = await run_api_model_flows(http, provider)
        await run_chat_flows(http, models)
    await run_token_flows(gateway, seen, token=token, session_id=session_id)
    # The keys did reach the provider, so every flow above carried them.
    bearers = {r.headers.get("authorization") for r in provider.requests + provider.model_list_requests}
    assert {f"Bearer {PROVIDER_KEY}", f"Bearer {TYPED_KEY}"} <= bearers
    await background_writes_landed(db, models, victim)

    secrets = {
        "provider key": PROVIDER_KEY,
        "provider key core": KEY_CORE,
        "typed key core": TYPED_KEY_CORE,
        "password": PASSWORD,
        "token": token,
        "token's secret part": token[len("bodhiapp_") + 8 :],  # the first 8 are the stored lookup prefix
        "session id": session_id,
    }
    found = [f"log: {hit}" for hit in hits(secrets, gateway.logs())]
    found += [f"response {i}: {hit}" for i, body in enumerate(seen.bodies) for hit in hits(secrets, body)]
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=gateway.auth_headers) as http:
        found += [f"/metrics: {hit}" for hit in hits(secrets, (await http.get("/metrics")).content)]
    found += await database_hits(db, secrets)
    in_redis, keys_read = await redis_hits(redis_url, redis_prefix, secrets)
    assert not found + in_redis, found + in_redis
    # The search itself works: what was planted in the open (a model's name) is found where it went.
    control = {"control": f"renamed-{RUN}"}
    assert hits(control, gateway.logs() + "".join(b.decode(errors="replace") for b in seen.bodies))
    assert await database_hits(db, control)
    assert len(seen.bodies) >= 35
    assert keys_read >= 3


@pytest.mark.parametrize("offset", [5, 40, -1])  # the key id, the wrapped data key, the ciphertext's tag
async def test_an_altered_stored_key_gives_a_clean_error(
    gateway: Gateway, client: httpx.AsyncClient, provider: FakeUpstream, db: asyncpg.Connection, offset: int
) -> None:
    model = f"altered-{uuid.uuid4().hex[:8]}"
    provider.scripts[model] = Script()
    body = {"name": model, "base_url": provider.base_url, "api_key": PROVIDER_KEY, "models": [model]}
    created = await client.post(API, json=body)
    assert created.status_code == 201, created.text
    row = uuid.UUID(created.json()["id"])
    await db.execute(  # one bit flipped, before any request could cache the route
        "UPDATE api_models SET sealed_key = set_byte(sealed_key, $2, get_byte(sealed_key, $2) # 1) WHERE id = $1",
        row,
        offset
        if offset >= 0
        else await db.fetchval("SELECT length(sealed_key) FROM api_models WHERE id = $1", row) - 1,
    )
    assert gateway.worker is not None
    worker_log_at, api_log_at = len(gateway.worker.log_text()), len(gateway.api.log_text())

    for stream in (False, True):
        answered = await chat(client, model, stream=stream)

        assert answered.status_code in (500, 503), answered.text
        error = answered.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] in ("secret_unreadable", "worker_key_missing"), error
        assert "Traceback" not in answered.text
        assert 'File "' not in answered.text
    assert not provider.requests_for(model)  # nothing was sent, with or without a key
    worker_log = gateway.worker.log_text()[worker_log_at:]
    assert "does not open" in worker_log or "No worker key" in worker_log
    assert "Traceback" not in worker_log
    assert "Traceback" not in gateway.api.log_text()[api_log_at:]
