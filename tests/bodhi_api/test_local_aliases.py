"""Local aliases through the HTTP API: files checked, names unique across aliases and API models, listed first."""

from __future__ import annotations

import asyncio
import json
import time
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
    sources = [e["source"] for e in listed]
    assert sources == sorted(sources, key=["router", "local", "api"].index)  # routers, then local aliases, first
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
        ({"path": None}, "path", "Give `path`"),
        (
            {"alias": "bad alias"},
            "alias",
            "Invalid request `alias`: must be 1 to 128 letters, digits or `- _ . / :`, starting with a letter or",
        ),
        ({"alias": "x" * 129}, "alias", "1 to 128"),
        ({"alias": None}, "alias", "1 to 128"),
        ({"alias": "__MISSING__"}, "alias", "Invalid request `alias`: Field required."),
        (
            {"context_params": {"n_gpu_layerz": 1}},
            "context_params",
            "Invalid request `context_params`: `n_gpu_layerz` is not supported; use chat_format, flash_attn,",
        ),
        (
            {"context_params": {"n_ctx": "big"}},
            "context_params.n_ctx",
            "Invalid request `context_params.n_ctx`: Input should be a valid integer.",
        ),
        ({"context_params": {"n_ctx": True}}, "context_params.n_ctx", "valid integer"),  # true is no number
        ({"context_params": {"n_gpu_layers": -2}}, "context_params.n_gpu_layers", "greater than or equal to -1"),
        ({"context_params": ["n_ctx"]}, "context_params", "valid dictionary"),
        ({"request_params": {"temperature": "hot"}}, "request_params.temperature", "valid number"),
        ({"request_params": {"top_p": 2}}, "request_params.top_p", "less than or equal to 1"),
        ({"request_params": {"stop": ["end", 3]}}, "request_params.stop", "must be a string or a list of strings"),
        ({"request_params": {"max_tokens": 8.5}}, "request_params.max_tokens", "valid integer"),
    ],
)
async def test_bad_aliases_are_refused_with_400(
    client: httpx.AsyncClient, tiny_gguf: Path, text_file: Path, case: tuple[dict[str, object], str, str]
) -> None:
    change, param, says = case
    body = {"alias": unique("bad"), "path": str(tiny_gguf)} | change
    if body.get("path") == "__TEXT__":
        body["path"] = str(text_file)
    if body.get("alias") == "__MISSING__":
        del body["alias"]
    response = await client.post(ALIASES, json=body)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert says in error["message"]


async def test_a_body_that_is_not_json_is_a_400_naming_no_field(client: httpx.AsyncClient) -> None:
    response = await client.post(ALIASES, content=b'{"alias": ', headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] is None  # not the character offset pydantic reports
    assert response.json()["error"]["message"] == "Invalid request: JSON decode error."


async def test_good_params_are_stored_as_given(client: httpx.AsyncClient, tiny_gguf: Path) -> None:
    context = {"n_ctx": 256, "n_gpu_layers": -1, "rope_freq_scale": 1, "flash_attn": False, "chat_format": "chatml"}
    request = {"temperature": 0, "stop": ["###"], "seed": -5, "system_prompt": "Be brief."}
    alias = unique("params")
    created = await client.post(
        ALIASES,
        json={"alias": alias, "path": str(tiny_gguf), "context_params": context, "request_params": request},
    )

    assert created.status_code == 201, created.text
    assert created.json()["context_params"] == context
    assert created.json()["request_params"] == request
    assert (await client.get(f"{ALIASES}/{alias}")).json() == created.json()
    nulls = await client.put(f"{ALIASES}/{alias}", json={"path": str(tiny_gguf), "context_params": {"n_ctx": None}})
    assert nulls.status_code == 200, nulls.text
    assert nulls.json()["context_params"] == {}  # null: the same as leaving it out


async def test_an_alias_is_not_renamed_by_a_put(client: httpx.AsyncClient, tiny_gguf: Path) -> None:
    alias = unique("fixed")
    assert (await client.post(ALIASES, json={"alias": alias, "path": str(tiny_gguf)})).status_code == 201
    renamed = await client.put(f"{ALIASES}/{alias}", json={"alias": unique("other"), "path": str(tiny_gguf)})

    assert renamed.status_code == 400
    assert renamed.json()["error"]["param"] == "alias"
    assert "cannot be renamed" in renamed.json()["error"]["message"]


async def test_aliases_are_listed_case_insensitively(client: httpx.AsyncClient, tiny_gguf: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    for name in (f"Zeta-model-{tag}", f"alpha-model-{tag}", f"Mid-model-{tag}"):
        assert (await client.post(ALIASES, json={"alias": name, "path": str(tiny_gguf)})).status_code == 201

    listed = [a["alias"] for a in (await client.get(ALIASES)).json()["data"] if a["alias"].endswith(tag)]
    assert listed == [f"alpha-model-{tag}", f"Mid-model-{tag}", f"Zeta-model-{tag}"]


def test_openapi_describes_the_alias_bodies(gateway: Gateway) -> None:
    document = httpx.get(f"{gateway.base_url}/openapi.json", timeout=10).json()
    schemas = document["components"]["schemas"]
    create = schemas["LocalAliasCreate"]
    public = schemas["LocalAliasPublic"]
    post = document["paths"][ALIASES]["post"]

    assert "alias" in create["required"]
    assert create["properties"]["alias"]["pattern"].startswith("^[A-Za-z0-9]")
    assert schemas["ContextParams"]["additionalProperties"] is False
    assert schemas["ContextParams"]["properties"]["n_gpu_layers"]["anyOf"][0]["minimum"] == -1
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LocalAliasCreate"
    }
    created_schema = post["responses"]["201"]["content"]["application/json"]["schema"]
    assert created_schema == {"$ref": "#/components/schemas/LocalAliasPublic"}
    assert set(public["required"]) >= {"alias", "path", "context_params", "request_params", "source", "created_at"}
    listed = document["paths"][ALIASES]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"$ref": "#/components/schemas/LocalAliasList"}


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
    asked = time.monotonic()
    response = await client.post("/v1/chat/completions", json={"model": alias, "messages": []})

    assert time.monotonic() - asked < 1.5  # no local worker follows the catalogue: nothing to wait for
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_worker_available"
    assert f"`{alias}`: no local worker serves it or follows the catalogue" in error["message"]
    assert "bodhi local-worker" in error["message"]


def test_request_params_apply_only_where_the_request_sets_nothing() -> None:
    body: dict[str, object] = {"model": "m", "temperature": 0.9, "messages": [{"role": "user", "content": "hi"}]}
    apply_request_params(body, {"temperature": 0.1, "max_tokens": 7, "system_prompt": "Be brief."})
    assert body["temperature"] == 0.9
    assert body["max_tokens"] == 7
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    own_system: dict[str, object] = {"messages": [{"role": "system", "content": "Mine."}]}
    apply_request_params(own_system, {"system_prompt": "Be brief."})
    assert own_system["messages"] == [{"role": "system", "content": "Mine."}]
