"""`BODHI_CORS_ORIGINS`: browser apps on the origins it names may call the API with a token (preflights answered,
answers readable); every other origin gets no CORS header, and a session cookie still changes nothing from
another origin. Real API processes."""

from __future__ import annotations

import httpx
import pydantic
import pytest

from bodhi_api.settings import ApiSettings
from tests.conftest import ADMIN_PASSWORD, Gateway, RegisterUpstream, StartGateway

APP = "https://app.example"
OTHER = "https://elsewhere.example"
MESSAGES = [{"role": "user", "content": "hi"}]
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# What the OpenAI JS SDK (`dangerouslyAllowBrowser`) asks to send from a browser, and Anthropic's.
OPENAI_SDK_HEADERS = (
    "authorization, content-type, x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version,"
    " x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout"
)
ANTHROPIC_SDK_HEADERS = (
    "anthropic-dangerous-direct-browser-access, anthropic-version, content-type, x-api-key, x-stainless-lang,"
    " x-stainless-helper-method"
)


def preflight(origin: str, method: str = "POST", headers: str = OPENAI_SDK_HEADERS) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.fixture
def cors_gateway(start_gateway: StartGateway) -> Gateway:
    return start_gateway(BODHI_CORS_ORIGINS=f"{APP}, http://localhost:5173/")


async def test_a_preflight_from_an_allowed_origin_is_answered(cors_gateway: Gateway) -> None:
    """Before, every preflight was the route's 405: no browser app on another origin could call the API."""
    async with httpx.AsyncClient(base_url=cors_gateway.base_url, timeout=10) as http:
        chat = await http.options("/v1/chat/completions", headers=preflight(APP))
        anthropic = await http.options("/v1/chat/completions", headers=preflight(APP, headers=ANTHROPIC_SDK_HEADERS))
        local = await http.options("/v1/models", headers=preflight("http://localhost:5173", "GET"))
        others = [
            await http.options(path, headers=preflight(APP, method))
            for method, path in [
                ("POST", "/v1/completions"),
                ("POST", "/v1/embeddings"),
                ("DELETE", "/bodhi/v1/tokens/00000000-0000-0000-0000-000000000000"),
                ("PATCH", "/bodhi/v1/models/api/00000000-0000-0000-0000-000000000000"),
                ("PUT", "/no/such/route"),
            ]
        ]

    assert chat.status_code == 200, chat.text
    allowed = cors_headers(chat)
    assert allowed["access-control-allow-origin"] == APP
    assert set(allowed["access-control-allow-methods"].split(", ")) == METHODS
    offered = {h.lower() for h in allowed["access-control-allow-headers"].split(", ")}
    assert {h.strip() for h in f"{OPENAI_SDK_HEADERS}, {ANTHROPIC_SDK_HEADERS}".split(",")} <= offered
    assert "access-control-allow-credentials" not in allowed  # a cookie never rides a cross-origin call
    assert "origin" in chat.headers["vary"].lower()
    assert chat.headers["x-bodhi-request-id"]  # inside the request-id layer, like every answer
    assert anthropic.status_code == 200, anthropic.text
    assert local.status_code == 200
    assert local.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert [r.status_code for r in others] == [200] * len(others)


async def test_an_allowed_origin_reads_answers_and_errors_with_a_token(
    cors_gateway: Gateway, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream()
    headers = cors_gateway.auth_headers | {"Origin": APP}
    async with httpx.AsyncClient(base_url=cors_gateway.base_url, headers=headers, timeout=20) as http:
        answered = await http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
        streamed = await http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})
        unknown = await http.post("/v1/chat/completions", json={"model": "no-such-model", "messages": MESSAGES})
        too_large = await http.post("/v1/embeddings", content=b"x" * (9 * 1024 * 1024))

    for response in (answered, streamed, unknown, too_large):
        assert response.headers["access-control-allow-origin"] == APP
        assert "access-control-allow-credentials" not in response.headers
        exposed = {h.lower() for h in response.headers["access-control-expose-headers"].split(", ")}
        assert {"x-request-id", "x-bodhi-request-id", "retry-after", "x-ratelimit-remaining-requests"} <= exposed
    assert [r.status_code for r in (answered, streamed, unknown, too_large)] == [200, 200, 404, 413]


async def test_another_origin_gets_no_cors_header(cors_gateway: Gateway, gateway: Gateway) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.options(f"{cors_gateway.base_url}/v1/chat/completions", headers=preflight(OTHER))
        simple = await http.get(
            f"{cors_gateway.base_url}/v1/models", headers=cors_gateway.auth_headers | {"Origin": OTHER}
        )
        by_default = await http.options(f"{gateway.base_url}/v1/chat/completions", headers=preflight(APP))

    assert refused.status_code == 405  # the route's own answer, as without CORS
    assert cors_headers(refused) == {}
    assert simple.status_code == 200
    assert cors_headers(simple) == {}
    assert "origin" in simple.headers["vary"].lower()  # a cache must not hand this answer to an allowed origin
    assert by_default.status_code == 405  # BODHI_CORS_ORIGINS unset: no origin is allowed
    assert cors_headers(by_default) == {}


async def test_a_session_cookie_still_changes_nothing_from_an_allowed_origin(cors_gateway: Gateway) -> None:
    """CORS lets a script call with a token it holds; it never makes the browser's cookie an ambient credential."""
    async with httpx.AsyncClient(base_url=cors_gateway.base_url, timeout=10) as http:
        login = {"username": cors_gateway.admin_username, "password": ADMIN_PASSWORD}
        logged_in = await http.post("/bodhi/v1/auth/login", json=login)
        assert logged_in.status_code == 200, logged_in.text
        cookie = {"Cookie": f"bodhi_session={logged_in.cookies['bodhi_session']}"}
        http.cookies.clear()
        cross = await http.post(
            "/bodhi/v1/tokens",
            headers=cookie | {"Origin": APP, "Sec-Fetch-Site": "cross-site"},
            json={"name": "from-another-origin", "scope": "user"},
        )
        read = await http.get("/bodhi/v1/user", headers=cookie | {"Origin": APP})

    assert cross.status_code == 403
    assert cross.json()["error"]["code"] == "cross_origin_request"
    assert "access-control-allow-credentials" not in cross.headers  # a browser would not even show it the refusal
    assert read.status_code == 200  # reads are no state change (and unreadable to a credentialed script)
    assert "access-control-allow-credentials" not in read.headers


@pytest.mark.parametrize("value", ["https://app.example/path", "app.example", "https://app.example?x=1", "ftp//x"])
def test_a_setting_that_is_no_origin_is_refused_at_startup(value: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="not an origin"):
        ApiSettings(cors_origins=value)


def test_origins_are_read_as_browsers_send_them() -> None:
    settings = ApiSettings(cors_origins=" https://App.Example/ ,http://localhost:5173,, ")
    assert settings.cors_origin_list == ["https://app.example", "http://localhost:5173"]
    assert ApiSettings().cors_origin_list == []
