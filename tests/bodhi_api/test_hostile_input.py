"""Hostile input is refused with a 4xx in the OpenAI shape, never a 500, and never read whole when it is huge.

Large bodies get 413 before the API holds them (its peak memory, VmHWM, does not move); NUL characters, lone
surrogates, control characters in names and keys, non-finite numbers and deep nesting get 400 naming the field.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, Gateway, RegisterUpstream, StartGateway
from tests.support.fake_upstream import FakeUpstream

MIB = 1024 * 1024
BIG = 20 * MIB  # over the default BODHI_MAX_BODY_BYTES (8 MiB)
JSON_HEADERS = {"Content-Type": "application/json"}


def assert_openai_error(response: httpx.Response, status: int, *, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    if status < 500:
        assert error["type"] in {"invalid_request_error", "authentication_error", "permission_error"}
    if param is not None:
        assert error["param"] == param, error
    return dict(error)


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM): a body read whole raises it even if freed at once."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def chunks(total: int, size: int = MIB) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b" " * piece
        sent += piece


# -- size ---------------------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_huge_bodies_get_413_before_they_are_read(start_gateway: StartGateway) -> None:
    own = start_gateway(worker=False)  # a process of its own: its peak memory is this test's alone
    url = f"{own.base_url}/v1/chat/completions"
    headers = {**JSON_HEADERS, **own.auth_headers}
    with httpx.Client(timeout=30) as http:
        assert http.post(url, json={"model": "warm-up", "messages": []}, headers=headers).status_code == 404
        before = peak_rss_kib(own.api.popen.pid)

        announced = http.post(url, content=b" " * BIG, headers=headers)  # with Content-Length
        chunked = http.post(url, content=chunks(BIG), headers=headers)  # Transfer-Encoding: chunked
        managed = http.post(f"{own.base_url}/bodhi/v1/models/api", content=chunks(BIG), headers=headers)

        after = peak_rss_kib(own.api.popen.pid)
    for response in (announced, chunked, managed):
        error = assert_openai_error(response, 413)
        assert error["code"] == "request_too_large"
        assert "8 MiB" in error["message"]
        assert "BODHI_MAX_BODY_BYTES" in error["message"]
        assert response.headers["x-bodhi-request-id"]
    assert "transfer-encoding" not in announced.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    # Three 20 MB bodies read whole would raise the peak by tens of MB; counted as they arrive, a chunk or two.
    assert after - before < 8 * 1024, f"peak resident memory grew by {(after - before) // 1024} MiB"


def test_the_limit_is_a_setting_and_bodies_within_it_pass(start_gateway: StartGateway) -> None:
    own = start_gateway(worker=False, BODHI_MAX_BODY_BYTES="2048")
    url = f"{own.base_url}/v1/chat/completions"
    headers = {**JSON_HEADERS, **own.auth_headers}

    def body(content: str) -> bytes:
        return json.dumps({"model": "no-such-model", "messages": [{"role": "user", "content": content}]}).encode()

    exact = body("x" * (2048 - len(body(""))))
    assert len(exact) == 2048

    def within(content: bytes | Iterator[bytes]) -> httpx.Response:
        return httpx.post(url, content=content, headers=headers, timeout=10)

    assert within(exact).status_code == 404  # read and routed: no such model
    assert within(iter([exact[:1000], exact[1000:]])).status_code == 404  # chunked, the same
    over = exact[:-1] + b" }"
    error = assert_openai_error(within(over), 413)
    assert "2 KiB" in error["message"]
    assert_openai_error(within(iter([over[:1000], over[1000:]])), 413)


# -- inference bodies ---------------------------------------------------------------------------------------------


def post_chat(gateway: Gateway, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{gateway.openai_base_url}/chat/completions",
        content=content,
        headers={**JSON_HEADERS, **gateway.auth_headers},
        timeout=20,
    )


def nested(depth: int) -> bytes:
    return b'{"model": "m", "messages": [], "x": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("content", "param"),
    [
        pytest.param(nested(1000), None, id="nested-1000-deep"),
        pytest.param(nested(100_000), None, id="nested-100000-deep"),
        pytest.param(nested(100), None, id="nested-100-deep"),
        pytest.param(b'{"model": "a\\u0000b", "messages": []}', "model", id="nul-in-model"),
        pytest.param(b'{"model": "a\\ud800", "messages": []}', None, id="lone-surrogate-in-model"),
        pytest.param(b'{"model": "a\nb", "messages": []}', None, id="raw-newline-in-json"),
        pytest.param(b'{"model": "a\\r\\nX-Evil: 1", "messages": []}', "model", id="crlf-in-model"),
        pytest.param(json.dumps({"model": "m" * MIB, "messages": []}).encode(), "model", id="1mb-model-id"),
        pytest.param(b'{"model": "m", "messages": [], "x": "\xed\xa0\x80"}', None, id="encoded-surrogate"),
        pytest.param(b'{"model": "m", "messages": [], "x": "\xff"}', None, id="not-utf-8"),
    ],
)
def test_hostile_inference_bodies_get_400(gateway: Gateway, content: bytes, param: str | None) -> None:
    assert_openai_error(post_chat(gateway, content), 400, param=param)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_numbers_are_not_sent_upstream(
    gateway: Gateway, fake_upstream: FakeUpstream, register_upstream: RegisterUpstream, constant: str
) -> None:
    model = await register_upstream()
    content = f'{{"model": "{model}", "messages": [{{"role": "user", "content": "hi"}}], "temperature": {constant}}}'

    error = assert_openai_error(post_chat(gateway, content.encode()), 400)

    assert constant in error["message"]
    assert not [r for r in fake_upstream.requests if r.body.get("model") == model]


async def test_lone_surrogates_in_messages_get_400_and_pairs_pass(
    gateway: Gateway, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream()

    def chat(content_escape: str) -> httpx.Response:
        body = f'{{"model": "{model}", "messages": [{{"role": "user", "content": "{content_escape}"}}]}}'
        return post_chat(gateway, body.encode())

    assert_openai_error(chat("\\ud83d"), 400)  # a high surrogate alone
    assert_openai_error(chat("x\\ude00"), 400)  # a low one alone
    assert chat("\\ud83d\\ude00").status_code == 200  # the pair: an emoji, as Python's json.dumps writes it
    assert chat("\\\\ud800").status_code == 200  # an escaped backslash and the text `ud800`: no surrogate at all
    assert chat("a\\u0000b").status_code == 200  # NUL in a message goes to the provider as sent: nothing stores it


# -- bodies FastAPI parses ----------------------------------------------------------------------------------------


def post(gateway: Gateway, path: str, content: bytes, *, cookies: httpx.Cookies | None = None) -> httpx.Response:
    auth = {} if cookies else gateway.auth_headers
    return httpx.post(
        f"{gateway.base_url}{path}", content=content, headers={**JSON_HEADERS, **auth}, cookies=cookies, timeout=20
    )


@pytest.fixture(scope="module")
def admin_session(gateway: Gateway) -> httpx.Cookies:
    """The admin's session cookie: managing users takes a manager, which no token's scope reaches."""
    login = {"username": gateway.admin_username, "password": ADMIN_PASSWORD}
    response = httpx.post(f"{gateway.base_url}/bodhi/v1/auth/login", json=login, timeout=20)
    assert response.status_code == 200, response.text
    return response.cookies


def test_deeply_nested_bodies_of_managed_routes_get_400(gateway: Gateway) -> None:
    body = b'{"name": "t", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = assert_openai_error(post(gateway, "/bodhi/v1/tokens", body), 400)
    assert error["type"] == "invalid_request_error"
    assert "nested" in error["message"]


NUL, LONE = "\x00", "\ud800"


def raw_json(value: dict[str, Any]) -> bytes:
    """``value`` as JSON, lone surrogates included (escaped, as a hostile client sends them)."""
    return json.dumps(value, ensure_ascii=True).encode()


@pytest.mark.parametrize("bad", [NUL, LONE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize(
    "case",
    [
        ("/bodhi/v1/tokens", {"name": "tok{}"}, "name"),
        ("/bodhi/v1/users", {"username": "u{}", "password": "pa55word-long", "role": "user"}, "username"),
        ("/bodhi/v1/users", {"username": "{}u", "password": "pa55word-long{}", "role": "user"}, "password"),
        ("/bodhi/v1/auth/login", {"username": "u{}", "password": "pa55word-long"}, "username"),
        ("/bodhi/v1/auth/login", {"username": "u", "password": "pa55{}word"}, "password"),
        ("/bodhi/v1/setup", {"username": "u{}", "password": "pa55word-long"}, "username"),
    ],
)
def test_unstorable_text_in_account_bodies_gets_400(
    gateway: Gateway, admin_session: httpx.Cookies, case: tuple[str, dict[str, str], str], bad: str
) -> None:
    path, body, param = case
    unique = uuid.uuid4().hex[:8]
    filled = {key: value.replace("{}", bad if key == param else unique) for key, value in body.items()}

    assert_openai_error(post(gateway, path, raw_json(filled), cookies=admin_session), 400, param=param)


def api_model(fake_upstream: FakeUpstream, **fields: Any) -> dict[str, Any]:
    return {
        "name": "hostile",
        "base_url": fake_upstream.base_url,
        "api_key": "sk-hostile-key",
        "models": [f"m-{uuid.uuid4().hex[:8]}"],
    } | fields


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"name": f"a{NUL}b"}, "name"),
        ({"name": f"a{LONE}b"}, "name"),
        ({"name": "a\r\nX-Injected: 1"}, "name"),
        ({"models": [f"m{NUL}"]}, "models.0"),
        ({"models": [f"m{LONE}"]}, "models.0"),
        ({"models": ["m\nn"]}, "models.0"),
        ({"models": ["m" * MIB]}, "models.0"),
        ({"prefix": "p\r\n"}, "prefix"),
        ({"api_key": "sk-a\r\nX-Injected: 1"}, "api_key"),
        ({"api_key": f"sk-{NUL}"}, "api_key"),
        ({"api_key": "sk-clé"}, "api_key"),
        ({"base_url": f"http://127.0.0.1:1/{LONE}"}, "base_url"),
    ],
)
def test_hostile_api_model_fields_get_400(
    gateway: Gateway, fake_upstream: FakeUpstream, fields: dict[str, Any], param: str
) -> None:
    body = raw_json(api_model(fake_upstream, **fields))

    assert_openai_error(post(gateway, "/bodhi/v1/models/api", body), 400, param=param)


@pytest.mark.parametrize(
    "body",
    [{"id": f"x{NUL}"}, {"base_url": "http://127.0.0.1:1/v1", "api_key": "k\r\n", "model": f"m{LONE}"}],
    ids=["nul-in-id", "lone-surrogate-in-model"],
)
def test_hostile_provider_checks_get_400(gateway: Gateway, body: dict[str, str]) -> None:
    assert_openai_error(post(gateway, "/bodhi/v1/models/api/test", raw_json(body)), 400)


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\x00" * 16)  # what the route checks: magic and version
    return path


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"request_params": {"system_prompt": f"be{NUL}nice"}}, "request_params.system_prompt"),
        ({"request_params": {"system_prompt": f"be{LONE}"}}, "request_params.system_prompt"),
        ({"request_params": {"stop": ["\n", f"x{NUL}"]}}, "request_params.stop"),
        ({"context_params": {"chat_format": f"chatml{NUL}"}}, "context_params.chat_format"),
        ({"path": f"/tmp/x{NUL}.gguf"}, "path"),
        ({"path": f"/tmp/{LONE}.gguf"}, "path"),
        ({"repo": f"a/b{NUL}", "filename": "x.gguf", "path": None}, "repo"),
        ({"path": "/tmp/" + "x" * 300 + ".gguf"}, "path"),  # ENAMETOOLONG, once taken for Postgres being down
        ({"path": None, "filename": "é" * 200}, "filename"),  # 400 bytes in one name
    ],
)
def test_hostile_local_alias_fields_get_400(
    gateway: Gateway, gguf_file: Path, fields: dict[str, Any], param: str
) -> None:
    body = {"alias": f"hostile-{uuid.uuid4().hex[:8]}", "path": str(gguf_file)} | fields

    assert_openai_error(post(gateway, "/bodhi/v1/models/alias", raw_json(body)), 400, param=param)


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_alias_params_get_400(gateway: Gateway, gguf_file: Path, constant: str) -> None:
    alias = f"hostile-{uuid.uuid4().hex[:8]}"
    body = f'{{"alias": "{alias}", "path": "{gguf_file}", "request_params": {{"temperature": {constant}}}}}'

    assert_openai_error(post(gateway, "/bodhi/v1/models/alias", body.encode()), 400)
