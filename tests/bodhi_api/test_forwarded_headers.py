"""Behind a load balancer that terminates TLS: ``X-Forwarded-Proto`` / ``-Host`` / ``-For`` from a trusted proxy make
the session cookie ``Secure`` and the same-origin check accept the browser's ``https://<public host>`` origin; from
any other address the headers change nothing.

The proxy is played by the test itself: its requests come from 127.0.0.1, trusted (``BODHI_TRUSTED_PROXIES``) by one
gateway and not by the other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from bodhi_api.auth.login_limit import limit_keys
from bodhi_api.auth.sessions import COOKIE_NAME
from bodhi_shared.redis_keys import RedisKeys
from tests.conftest import ADMIN_PASSWORD, Gateway, StartGateway

LOGIN = "/bodhi/v1/auth/login"
PUBLIC_HOST = "bodhi.example"
PUBLIC_ORIGIN = f"https://{PUBLIC_HOST}"
# What a proxy terminating TLS for https://bodhi.example adds to a browser's request.
VIA_PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC_HOST, "X-Forwarded-For": "203.0.113.7"}


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def session_cookie(response: httpx.Response) -> tuple[str, str]:
    """The session id and the whole ``Set-Cookie`` line that carried it."""
    line = next(value for value in response.headers.get_list("set-cookie") if value.startswith(f"{COOKIE_NAME}="))
    return line.split(";", 1)[0].removeprefix(f"{COOKIE_NAME}="), line


def attributes(set_cookie: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in set_cookie.split(";")[1:]}


async def client_failures_exist(redis: aioredis.Redis, gateway: Gateway, client: str) -> bool:
    key, _ = limit_keys(RedisKeys(gateway.env["BODHI_REDIS_PREFIX"]), username="nobody", client=client)
    return bool(await redis.exists(key))


async def test_via_a_trusted_proxy_the_cookie_is_secure_and_the_public_origin_is_same_origin(
    gateway: Gateway, start_gateway: StartGateway, redis_client: aioredis.Redis
) -> None:
    own = await asyncio.to_thread(start_gateway, worker=False, BODHI_TRUSTED_PROXIES="127.0.0.1/32")
    credentials = {"username": gateway.admin_username, "password": ADMIN_PASSWORD}
    async with httpx.AsyncClient(base_url=own.base_url, timeout=20) as http:
        logged_in = await http.post(LOGIN, json=credentials, headers={**VIA_PROXY, "Origin": PUBLIC_ORIGIN})
        assert logged_in.status_code == 200, logged_in.text
        session, set_cookie = session_cookie(logged_in)
        assert "secure" in attributes(set_cookie)
        assert {"httponly", "samesite"} <= attributes(set_cookie)
        http.cookies.clear()  # sent by hand below: a Secure cookie would not go back over plain HTTP

        as_browser = {**VIA_PROXY, "Cookie": f"{COOKIE_NAME}={session}"}
        name = f"forwarded-{uuid.uuid4().hex[:6]}"
        created = await http.post(
            "/bodhi/v1/tokens", json={"name": name, "scope": "user"}, headers={**as_browser, "Origin": PUBLIC_ORIGIN}
        )
        assert created.status_code == 201, created.text
        for origin in ("https://evil.example", own.base_url):  # the address the proxy dialled is not the origin
            refused = await http.post(
                "/bodhi/v1/tokens", json={"name": name, "scope": "user"}, headers={**as_browser, "Origin": origin}
            )
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "cross_origin_request"
        deleted = await http.delete(
            f"/bodhi/v1/tokens/{created.json()['id']}", headers={**as_browser, "Origin": PUBLIC_ORIGIN}
        )
        assert deleted.status_code == 204, deleted.text

        # The client address is the one the proxy names: the login limit counts it, not the proxy.
        failed = await http.post(LOGIN, json={"username": "nobody", "password": "wrong-password"}, headers=VIA_PROXY)
        assert failed.status_code == 401, failed.text
    assert await client_failures_exist(redis_client, own, "203.0.113.7")
    assert not await client_failures_exist(redis_client, own, "127.0.0.1")


async def test_from_an_untrusted_address_the_same_headers_are_ignored(
    gateway: Gateway, start_gateway: StartGateway, redis_client: aioredis.Redis
) -> None:
    trusting = await asyncio.to_thread(start_gateway, worker=False, BODHI_TRUSTED_PROXIES="127.0.0.1/32")
    own = await asyncio.to_thread(start_gateway, worker=False, BODHI_TRUSTED_PROXIES="192.0.2.1/32")  # not us
    credentials = {"username": gateway.admin_username, "password": ADMIN_PASSWORD}
    # The very request a trusted proxy gets through...
    async with httpx.AsyncClient(base_url=trusting.base_url, timeout=20) as http:
        accepted = await http.post(LOGIN, json=credentials, headers={**VIA_PROXY, "Origin": PUBLIC_ORIGIN})
        assert accepted.status_code == 200, accepted.text
    # ...is refused from anyone else, and its headers change nothing there.
    async with httpx.AsyncClient(base_url=own.base_url, timeout=20) as http:
        refused = await http.post(LOGIN, json=credentials, headers={**VIA_PROXY, "Origin": PUBLIC_ORIGIN})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "cross_origin_request"

        logged_in = await http.post(LOGIN, json=credentials, headers={**VIA_PROXY, "Origin": own.base_url})
        assert logged_in.status_code == 200, logged_in.text
        _, set_cookie = session_cookie(logged_in)
        assert "secure" not in attributes(set_cookie)  # plain HTTP, whatever X-Forwarded-Proto claims
        http.cookies.clear()

        failed = await http.post(LOGIN, json={"username": "nobody", "password": "wrong-password"}, headers=VIA_PROXY)
        assert failed.status_code == 401, failed.text
    assert await client_failures_exist(redis_client, own, "127.0.0.1")
    assert not await client_failures_exist(redis_client, own, "203.0.113.7")


async def test_a_malformed_forwarded_host_is_not_believed(gateway: Gateway, start_gateway: StartGateway) -> None:
    own = await asyncio.to_thread(start_gateway, worker=False, BODHI_TRUSTED_PROXIES="127.0.0.1/32")
    credentials = {"username": gateway.admin_username, "password": ADMIN_PASSWORD}
    async with httpx.AsyncClient(base_url=own.base_url, timeout=20) as http:
        for forwarded_host in ("evil.example/path", "user@evil.example", "evil.example:notaport"):
            refused = await http.post(
                LOGIN,
                json=credentials,
                headers={**VIA_PROXY, "X-Forwarded-Host": forwarded_host, "Origin": f"https://{forwarded_host}"},
            )
            assert refused.status_code == 403, f"{forwarded_host}: {refused.text}"
        # Of several values, the proxy's own (the last) wins over one a client sent ahead of it.
        chained = await http.post(
            LOGIN,
            json=credentials,
            headers={**VIA_PROXY, "X-Forwarded-Host": f"evil.example, {PUBLIC_HOST}", "Origin": PUBLIC_ORIGIN},
        )
        assert chained.status_code == 200, chained.text
