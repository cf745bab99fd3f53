"""The failed-login limit through real gateways: per address (refuses), per username (slows down), bounded.

Tests that fail many logins run on a gateway of their own (``start_gateway``: its own Redis namespace), so the
session gateway's 127.0.0.1 is never limited for the other tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bodhi_api.auth.login_limit import (
    FREE_USER_FAILURES,
    MAX_CLIENT_FAILURES,
    USER_DELAYS_S,
    limit_keys,
    reserve_login_attempt,
)
from bodhi_api.http_errors import TooManyRequests
from bodhi_shared.redis_keys import RedisKeys
from tests.conftest import ADMIN_PASSWORD, Gateway, StartGateway
from tests.support.backing import new_name

LOGIN = "/bodhi/v1/auth/login"
PASSWORD = "limit-password-1"


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def login_keys(client: aioredis.Redis, prefix: str) -> list[str]:
    return sorted([key.decode() async for key in client.scan_iter(match=f"{prefix}:login-failures:*", count=1000)])


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def assert_limited(response: httpx.Response, *, by: str) -> int:
    """A 429 in the OpenAI shape naming what limited it; returns its Retry-After."""
    assert response.status_code == 429, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert by in error["message"]
    assert "bodhi_session" not in response.cookies
    return int(response.headers["retry-after"])


async def create_user(gateway: Gateway) -> str:
    """A new user (role user) made by the admin's session; its username."""
    username = f"limited-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=20) as http:
        admin = await http.post(LOGIN, json={"username": gateway.admin_username, "password": ADMIN_PASSWORD})
        assert admin.status_code == 200, admin.text
        created = await http.post(  # with the session cookie the client kept
            "/bodhi/v1/users", json={"username": username, "password": PASSWORD, "role": "user"}
        )
        assert created.status_code == 201, created.text
    return username


async def test_huge_login_bodies_are_refused_before_any_redis_write(
    gateway: Gateway, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    before = await login_keys(redis_client, redis_prefix)
    huge = "u" * 5_000_000
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        for body, param in (
            ({"username": huge, "password": "wrong-password"}, "username"),
            ({"username": "someone", "password": huge}, "password"),
            ({"username": "x" * 65, "password": "wrong-password"}, "username"),
        ):
            response = await http.post(LOGIN, json=body)
            assert response.status_code == 400, response.text[:200]
            assert response.json()["error"]["type"] == "invalid_request_error"
            assert response.json()["error"]["param"] == param
            assert len(response.content) < 1000  # the value is not echoed
    assert await login_keys(redis_client, redis_prefix) == before


async def test_rotating_forwarded_for_does_not_bypass_the_address_limit(
    start_gateway: StartGateway, redis_client: aioredis.Redis
) -> None:
    own = start_gateway(worker=False)  # BODHI_TRUSTED_PROXIES unset: X-Forwarded-For is ignored
    prefix = own.env["BODHI_REDIS_PREFIX"]
    usernames = [f"Guess-{i}-{uuid.uuid4().hex[:6]}" for i in range(MAX_CLIENT_FAILURES + 1)]
    async with httpx.AsyncClient(base_url=own.base_url, timeout=30) as http:
        for batch in range(0, MAX_CLIENT_FAILURES, 10):  # a new username each time: no per-username slow-down
            answers = await asyncio.gather(
                *(
                    http.post(
                        LOGIN,
                        json={"username": usernames[i], "password": "wrong-password"},
                        headers=from_address(f"198.51.100.{i}"),
                    )
                    for i in range(batch, min(batch + 10, MAX_CLIENT_FAILURES))
                )
            )
            assert [a.status_code for a in answers] == [401] * len(answers), [a.text for a in answers]
        limited = await http.post(
            LOGIN,
            json={"username": usernames[-1], "password": "wrong-password"},
            headers=from_address("192.0.2.200"),
        )
        assert assert_limited(limited, by="address") > 60  # the rest of the 15-minute window

    keys = await login_keys(redis_client, prefix)
    assert len(keys) == MAX_CLIENT_FAILURES + 1  # one per username, and one address: 127.0.0.1
    assert not [key for key in keys for name in usernames if name.lower() in key.lower()]
    assert max(len(key) for key in keys) < len(prefix) + 100  # digests: whatever was sent, a key stays small


async def test_a_user_under_attack_gets_in_from_another_address_after_a_short_wait(
    gateway: Gateway, start_gateway: StartGateway, redis_client: aioredis.Redis
) -> None:
    own = start_gateway(worker=False, BODHI_TRUSTED_PROXIES="127.0.0.1")  # X-Forwarded-For names the client
    target, bystander = await create_user(own), await create_user(own)
    wrong = {"username": target, "password": "wrong-password"}
    right = {"username": target.upper(), "password": PASSWORD}
    async with httpx.AsyncClient(base_url=own.base_url, timeout=30) as http:
        # A burst from many addresses: a few guesses are checked, the rest wait for the first delay.
        burst = await asyncio.gather(
            *(http.post(LOGIN, json=wrong, headers=from_address(f"203.0.113.{i}")) for i in range(12))
        )
        assert sorted(a.status_code for a in burst) == [401] * FREE_USER_FAILURES + [429] * (12 - FREE_USER_FAILURES)
        assert {assert_limited(a, by="user") for a in burst if a.status_code == 429} == {USER_DELAYS_S[0]}

        # Each further failure doubles the wait, whatever address it comes from; the real user from a new
        # address waits that long at most, and then gets in.
        await asyncio.sleep(USER_DELAYS_S[0])
        failed = await http.post(LOGIN, json=wrong, headers=from_address("203.0.113.50"))
        assert failed.status_code == 401, failed.text
        early = await http.post(LOGIN, json=right, headers=from_address("192.0.2.10"))
        wait = assert_limited(early, by="user")
        assert wait <= USER_DELAYS_S[1]
        await asyncio.sleep(wait)
        welcome = await http.post(LOGIN, json=right, headers=from_address("192.0.2.10"))
        assert welcome.status_code == 200, welcome.text
        http.cookies.clear()
        after = await http.post(LOGIN, json=wrong, headers=from_address("192.0.2.10"))
        assert after.status_code == 401, after.text  # the success cleared the username's failures

        # The attacking addresses are not locked out of other accounts by this.
        other = await http.post(
            LOGIN, json={"username": bystander, "password": PASSWORD}, headers=from_address("203.0.113.0")
        )
        assert other.status_code == 200, other.text

    keys = await login_keys(redis_client, own.env["BODHI_REDIS_PREFIX"])
    assert keys
    assert not [key for key in keys if target.lower() in key.lower() or "203.0.113" in key]


async def test_the_username_delay_doubles_up_to_its_cap(redis_client: aioredis.Redis) -> None:
    keys = RedisKeys(new_name("bodhitest-limit"))
    _, user_key = limit_keys(keys, username="Slowed", client="192.0.2.1")
    waits = []
    try:
        for failures in range(FREE_USER_FAILURES, FREE_USER_FAILURES + len(USER_DELAYS_S) + 3):
            seconds, micros = await redis_client.time()
            # As if the last of ``failures`` failures had just happened (by Redis' clock, which the limit reads).
            last = seconds + micros / 1_000_000
            await redis_client.hset(user_key, mapping={"n": failures, "last": last})  # type: ignore[misc]  # sync|async types
            with pytest.raises(TooManyRequests) as refused:
                await reserve_login_attempt(redis_client, keys, username=" slowed ", client="192.0.2.2")
            waits.append(int(refused.value.headers["Retry-After"]))
    finally:
        await redis_client.delete(*[key async for key in redis_client.scan_iter(match=f"{keys.namespace}:*")])
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30, 30]
