"""Provider keys at rest: sealed for the remote workers, bound to their row and base URL, re-wrappable by rotation."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

import bodhi_api
from bodhi_api.settings import ApiSettings
from bodhi_shared.crypto import (
    LEGACY_VERSION,
    PUBLIC_KEY_FILE,
    REBOUND_VERSION,
    PrivateKey,
    PublicKey,
    SealedSecret,
    SecretUnreadable,
    generate_key_pair,
    open_bound,
    open_sealed,
    rebind_legacy,
    seal,
)
from bodhi_shared.worker_keys import KEYS_DIR, WorkerPrivateKeySettings
from tests.conftest import Gateway, StartGateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import run_bodhi

API = "/bodhi/v1/models/api"


async def create(client: httpx.AsyncClient, fake_upstream: FakeUpstream, api_key: str) -> tuple[str, str]:
    model = f"keyed-{uuid.uuid4().hex[:6]}"
    created = await client.post(API, json={"base_url": fake_upstream.base_url, "api_key": api_key, "models": [model]})
    assert created.status_code == 201, created.text
    return created.json()["id"], model


def worker_keyring(gateway: Gateway) -> dict[str, PrivateKey]:
    return dict(WorkerPrivateKeySettings(home=Path(gateway.env["BODHI_HOME"])).load_worker_keyring())


async def test_rows_hold_no_plaintext_key(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, db: asyncpg.Connection
) -> None:
    api_key = "sk-plain-" + uuid.uuid4().hex
    row_id, _ = await create(client, fake_upstream, api_key)
    row = await db.fetchrow("SELECT * FROM api_models WHERE id = $1", uuid.UUID(row_id))

    assert row is not None
    for column, value in row.items():
        raw = value if isinstance(value, bytes) else str(value).encode()
        assert api_key.encode() not in raw, column
        assert api_key[-12:].encode() not in raw, column  # not even a large part of it
    assert row["key_hint"] == f"sk-...{api_key[-4:]}"


async def test_a_ciphertext_moved_to_another_row_does_not_open(
    gateway: Gateway, client: httpx.AsyncClient, fake_upstream: FakeUpstream, db: asyncpg.Connection
) -> None:
    key_a, key_b = "sk-row-a-" + uuid.uuid4().hex, "sk-row-b-" + uuid.uuid4().hex
    row_a, _ = await create(client, fake_upstream, key_a)
    row_b, model_b = await create(client, fake_upstream, key_b)
    sealed_a = await db.fetchval("SELECT sealed_key FROM api_models WHERE id = $1", uuid.UUID(row_a))
    await db.execute("UPDATE api_models SET sealed_key = $2 WHERE id = $1", uuid.UUID(row_b), sealed_a)

    response = await client.post("/v1/chat/completions", json={"model": model_b, "messages": []})

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "secret_unreadable"
    assert all(key_a not in r.headers.get("authorization", "") for r in fake_upstream.requests_for(model_b))
    await client.delete(f"{API}/{row_b}")
    keyring, url = worker_keyring(gateway), fake_upstream.base_url
    with pytest.raises(SecretUnreadable):
        open_bound(SealedSecret.from_bytes(sealed_a), private_keys=keyring, row=row_b, base_url=url)
    with pytest.raises(SecretUnreadable):
        open_bound(SealedSecret.from_bytes(sealed_a), private_keys=keyring, row=row_a, base_url=url + "/other")
    assert open_bound(SealedSecret.from_bytes(sealed_a), private_keys=keyring, row=row_a, base_url=url) == key_a


def test_the_api_holds_only_the_public_key(gateway: Gateway) -> None:
    settings = ApiSettings(home=Path(gateway.env["BODHI_HOME"]))
    assert not any("private_key" in name for name in ApiSettings.model_fields)
    public_key = settings.load_worker_public_key()
    assert isinstance(public_key, PublicKey)
    # Nothing the API is given opens a sealed key: any other private key fails on it.
    stranger, _ = generate_key_pair()
    sealed = seal("sk-x", public_key=public_key, binding="r")
    with pytest.raises(SecretUnreadable):
        open_sealed(sealed, private_keys={sealed.key_id: stranger}, binding="r")
    api_source = "\n".join(p.read_text() for p in Path(bodhi_api.__path__[0]).rglob("*.py"))
    for opener in ("open_sealed", "open_bound", "PrivateKey", "WorkerKeyring", "load_worker_keyring"):
        assert opener not in api_source


async def test_keys_rotate_rewraps_every_key_and_chat_keeps_working(
    gateway: Gateway, client: httpx.AsyncClient, fake_upstream: FakeUpstream, db: asyncpg.Connection
) -> None:
    api_key = "sk-rotate-" + uuid.uuid4().hex
    _, model = await create(client, fake_upstream, api_key)
    keys_dir = Path(gateway.env["BODHI_HOME"]) / KEYS_DIR
    old_public = PublicKey.load((keys_dir / PUBLIC_KEY_FILE).read_text())
    old_key_id = old_public.key_id
    # Keys from before URL binding, bare (version 1) and re-bound by the API (version 3): rotation flattens both.
    legacy_key = "sk-legacy-" + uuid.uuid4().hex
    rebound_id, rebound_model = await create(client, fake_upstream, legacy_key)
    legacy = seal(legacy_key, public_key=old_public, binding=rebound_id, version=LEGACY_VERSION)
    rebound = rebind_legacy(legacy, public_key=old_public, row=rebound_id, base_url=fake_upstream.base_url)
    assert rebound.version == REBOUND_VERSION
    await db.execute("UPDATE api_models SET sealed_key = $2 WHERE id = $1", uuid.UUID(rebound_id), rebound.to_bytes())
    bare_id, bare_model = await create(client, fake_upstream, legacy_key)
    bare = seal(legacy_key, public_key=old_public, binding=bare_id, version=LEGACY_VERSION)
    await db.execute("UPDATE api_models SET sealed_key = $2 WHERE id = $1", uuid.UUID(bare_id), bare.to_bytes())

    done = await asyncio.to_thread(run_bodhi, "keys", "rotate", env=gateway.env)

    new_key_id = PublicKey.load((keys_dir / PUBLIC_KEY_FILE).read_text()).key_id
    assert new_key_id != old_key_id
    assert f"key id {new_key_id}" in done.stdout
    assert (keys_dir / f"worker_private_key.{old_key_id}.pem").exists()  # the old key stays until removed by hand
    stored = [
        SealedSecret.from_bytes(bytes(r["sealed_key"])) for r in await db.fetch("SELECT sealed_key FROM api_models")
    ]
    assert {sealed.key_id for sealed in stored} == {new_key_id}
    assert {sealed.version for sealed in stored} == {2}
    await client.post(API, json={"base_url": "http://127.0.0.1:9/v1", "api_key": "k", "models": [f"x-{uuid.uuid4()}"]})
    for flattened in (rebound_model, bare_model):  # (the save above dropped every replica's cached routes)
        answered = await client.post("/v1/chat/completions", json={"model": flattened, "messages": []})
        assert answered.status_code == 200, answered.text
        assert fake_upstream.requests_for(flattened)[-1].headers["authorization"] == f"Bearer {legacy_key}"
    # The running worker learns the new key from its key files; the running API seals with the new public key.
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": []})
    assert response.status_code == 200, response.text
    assert fake_upstream.requests_for(model)[-1].headers["authorization"] == f"Bearer {api_key}"
    _, later_model = await create(client, fake_upstream, "sk-after-rotation-000000")
    later = await db.fetchval("SELECT sealed_key FROM api_models WHERE $1 = ANY(models)", later_model)
    assert SealedSecret.from_bytes(bytes(later)).key_id == new_key_id


async def test_a_public_key_gone_since_start_is_a_503_not_a_crash(
    gateway: Gateway, start_gateway: StartGateway, scratch: Path, fake_upstream: FakeUpstream
) -> None:
    key_file = scratch / f"public-{uuid.uuid4().hex[:6]}.pem"
    key_file.write_text((Path(gateway.env["BODHI_HOME"]) / KEYS_DIR / PUBLIC_KEY_FILE).read_text())
    api = start_gateway(worker=False, BODHI_WORKER_PUBLIC_KEY_FILE=str(key_file))
    key_file.unlink()

    async with httpx.AsyncClient(base_url=api.base_url, headers=api.auth_headers, timeout=20) as http:
        saved = await http.post(
            API, json={"base_url": fake_upstream.base_url, "api_key": "sk-x", "models": [f"m-{uuid.uuid4().hex[:6]}"]}
        )

    assert saved.status_code == 503, saved.text  # it was a plain-text 500: SystemExit on the request path
    assert saved.json()["error"]["code"] == "worker_key_missing"
    assert "BODHI_WORKER_PUBLIC_KEY" in saved.json()["error"]["message"]
    assert api.api.popen.poll() is None
