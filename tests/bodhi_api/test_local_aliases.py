"""Local aliases through the HTTP API: files checked, names unique across aliases and API models, listed first."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from bodhi_api.inference import apply_request_params
from tests.conftest import Gateway, StartGateway
from tests.support.tiny_gguf import write_tiny_llama_gguf

ALIASES = "/bodhi/v1/models/alias"


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.gguf"
    path.write_text("not a model")
    return path


def hf_cache_with(tiny_gguf: Path, root: Path, owner_repo: str) -> Path:
    """A HuggingFace cache under ``root`` holding ``tiny_gguf`` as ``owner_repo``'s Q8_0 file."""
    snapshot = root / "hub" / f"models--{owner_repo.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "tiny.Q8_0.gguf").write_bytes(tiny_gguf.read_bytes())
    return root


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf").resolve()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def test_create_list_update_delete(
    gateway: Gateway, client: httpx.AsyncClient, tiny_gguf: Path, redis_url: str
) -> None:
    alias = unique("tiny")
    created = await client.post(
        ALIASES,
        json={
            "alias": alias,
            "path": str(tiny_gguf),
            "context_params": {"n_ctx": 256},
            "request_params": {"temperature": 0.2, "system_prompt": "Be brief."},
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["path"] == str(tiny_gguf)
    assert created.json()["source"] == "user"

    listed = (await client.get("/bodhi/v1/models")).json()["data"]
    assert listed[0]["source"] == "local"  # local aliases come first
    assert {"id": alias, "source": "local", "api_model_id": None} in [
        {k: e[k] for k in ("id", "source", "api_model_id")} for e in listed
    ]
    openai_ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
    assert openai_ids == [e["id"] for e in listed]

    redis = aioredis.Redis.from_url(redis_url)
    try:
        entry = await redis.hget(f"{gateway.env['BODHI_REDIS_PREFIX']}:local-aliases", alias)
    finally:
        await redis.aclose()
    assert entry is not None
    assert json.loads(entry) == {"alias": alias, "path": str(tiny_gguf), "context_params": {"n_ctx": 256}}

    updated = await client.put(f"{ALIASES}/{alias}", json={"path": str(tiny_gguf), "context_params": {"n_ctx": 128}})
    assert updated.json()["context_params"] == {"n_ctx": 128}
    assert updated.json()["request_params"] == {}
    assert (await client.delete(f"{ALIASES}/{alias}")).status_code == 204
    assert (await client.get(f"{ALIASES}/{alias}")).status_code == 404
    assert alias not in [m["id"] for m in (await client.get("/v1/models")).json()["data"]]


@pytest.mark.parametrize(
    "case",
    [
        ({"path": "/nowhere/model.gguf"}, "path", "no file at"),
        ({"path": "__TEXT__"}, "path", "not a GGUF file"),
        ({"alias": "bad alias"}, "alias", "letters, digits"),
        ({"context_params": {"n_gpu_layerz": 1}}, "context_params", "n_gpu_layerz"),
        ({"context_params": {"n_ctx": "big"}}, "context_params", "must be a int"),
        ({"request_params": {"temperature": "hot"}}, "request_params", "temperature"),
        ({"path": None}, "path", "Give `path`"),
    ],
)
async def test_bad_aliases_are_refused_with_400(
    client: httpx.AsyncClient, tiny_gguf: Path, text_file: Path, case: tuple[dict[str, object], str, str]
) -> None:
    change, param, says = case
    body = {"alias": unique("bad"), "path": str(tiny_gguf)} | change
    if body.get("path") == "__TEXT__":
        body["path"] = str(text_file)
    response = await client.post(ALIASES, json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert says in response.json()["error"]["message"]


async def test_names_are_unique_across_aliases_and_api_models(client: httpx.AsyncClient, tiny_gguf: Path) -> None:
    name = unique("shared-name")
    api_model = await client.post(
        "/bodhi/v1/models/api",
        json={"name": "Provider X", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-x", "models": [name]},
    )
    assert api_model.status_code == 201
    alias_clash = await client.post(ALIASES, json={"alias": name, "path": str(tiny_gguf)})
    assert alias_clash.status_code == 409
    assert "`Provider X`" in alias_clash.json()["error"]["message"]

    alias = unique("only-alias")
    assert (await client.post(ALIASES, json={"alias": alias, "path": str(tiny_gguf)})).status_code == 201
    model_clash = await client.post(
        "/bodhi/v1/models/api", json={"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-x", "models": [alias]}
    )
    assert model_clash.status_code == 409
    assert f"local alias `{alias}`" in model_clash.json()["error"]["message"]
    twice = await client.post(ALIASES, json={"alias": alias, "path": str(tiny_gguf)})
    assert twice.status_code == 409


async def test_huggingface_cache_files_become_automatic_aliases(
    start_gateway: StartGateway, tiny_gguf: Path, tmp_path: Path
) -> None:
    owner_repo = unique("acme/tiny")
    hf_home = await asyncio.to_thread(hf_cache_with, tiny_gguf, tmp_path / "hf", owner_repo)
    own = await asyncio.to_thread(start_gateway, worker=False, HF_HOME=str(hf_home))
    async with httpx.AsyncClient(base_url=own.base_url, headers=own.auth_headers, timeout=20) as http:
        listed = (await http.get(ALIASES)).json()["data"]
        by_repo = await http.post(
            ALIASES, json={"alias": unique("by-repo"), "repo": owner_repo, "filename": "tiny.Q8_0.gguf"}
        )
        missing = await http.post(
            ALIASES, json={"alias": unique("gone"), "repo": owner_repo, "filename": "tiny.Q4_0.gguf"}
        )

    auto = [a for a in listed if a["alias"] == f"{owner_repo}:Q8_0"]
    assert len(auto) == 1
    assert auto[0]["source"] == "auto"
    assert by_repo.status_code == 201, by_repo.text
    assert missing.status_code == 400
    assert "HuggingFace cache" in missing.json()["error"]["message"]


async def test_an_alias_without_a_live_worker_is_503_at_once(client: httpx.AsyncClient, tiny_gguf: Path) -> None:
    alias = unique("idle")
    assert (await client.post(ALIASES, json={"alias": alias, "path": str(tiny_gguf)})).status_code == 201
    response = await client.post("/v1/chat/completions", json={"model": alias, "messages": []})

    assert response.status_code == 503
    assert f"`{alias}`" in response.json()["error"]["message"]
    assert "bodhi local-worker" in response.json()["error"]["message"]


def test_request_params_apply_only_where_the_request_sets_nothing() -> None:
    body: dict[str, object] = {"model": "m", "temperature": 0.9, "messages": [{"role": "user", "content": "hi"}]}
    apply_request_params(body, {"temperature": 0.1, "max_tokens": 7, "system_prompt": "Be brief."})
    assert body["temperature"] == 0.9
    assert body["max_tokens"] == 7
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    own_system: dict[str, object] = {"messages": [{"role": "system", "content": "Mine."}]}
    apply_request_params(own_system, {"system_prompt": "Be brief."})
    assert own_system["messages"] == [{"role": "system", "content": "Mine."}]
