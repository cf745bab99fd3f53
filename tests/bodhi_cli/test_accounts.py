"""``bodhi users create`` and ``bodhi tokens create``: an operator's token works with the official OpenAI SDK."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid

import openai
import pytest

from tests.conftest import Gateway, RegisterUpstream
from tests.support.fake_upstream import Script, chunk_text
from tests.support.processes import bodhi, run_bodhi

PASSWORD = "cli-password-1"
TOKEN_LEN = len("bodhiapp_") + 43 + 6


async def test_cli_user_and_token_work_with_the_openai_sdk(
    gateway: Gateway, register_upstream: RegisterUpstream
) -> None:
    username = f"cli-{uuid.uuid4().hex[:8]}"
    created = await asyncio.to_thread(
        run_bodhi, "users", "create", username, "--role", "user", "--password-stdin", env=gateway.env, stdin=PASSWORD
    )
    assert username in created.stdout
    assert PASSWORD not in created.stdout + created.stderr
    issued = await asyncio.to_thread(
        run_bodhi, "tokens", "create", "--user", username.upper(), "--scope", "user", "--name", "ci", env=gateway.env
    )
    token = issued.stdout.strip().splitlines()[-1]
    assert token.startswith("bodhiapp_")
    assert len(token) == TOKEN_LEN

    script = Script(chunks=4)
    model = await register_upstream(script)
    client = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=token)
    try:
        models = await client.models.list()
        assert model in [m.id for m in models.data]
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        received = [chunk.choices[0].delta.content or "" async for chunk in stream]
    finally:
        await client.close()
    assert received == [chunk_text(script, i) for i in range(4)]

    wrong = openai.AsyncOpenAI(
        base_url=gateway.openai_base_url, api_key=token[:-1] + ("A" if token[-1] != "A" else "B")
    )
    try:
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.list()
    finally:
        await wrong.close()


async def test_cli_refuses_a_token_scope_above_the_users_role(gateway: Gateway) -> None:
    username = f"cli-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(
        run_bodhi, "users", "create", username, "--role", "user", "--password-stdin", env=gateway.env, stdin=PASSWORD
    )
    refused = await asyncio.to_thread(
        subprocess.run,
        bodhi("tokens", "create", "--user", username, "--scope", "power_user"),
        env={**os.environ, **gateway.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0
    assert "bodhiapp_" not in refused.stdout
    assert "power_user" in refused.stderr

    unknown = await asyncio.to_thread(
        subprocess.run,
        bodhi("tokens", "create", "--user", f"nobody-{username}"),
        env={**os.environ, **gateway.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert unknown.returncode != 0
    assert "bodhiapp_" not in unknown.stdout


async def test_cli_tokens_may_expire_and_be_limited_to_models(
    gateway: Gateway, register_upstream: RegisterUpstream
) -> None:
    username = f"cli-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(
        run_bodhi, "users", "create", username, "--role", "user", "--password-stdin", env=gateway.env, stdin=PASSWORD
    )
    model = await register_upstream(Script(chunks=1))
    args = ("tokens", "create", "--user", username, "--expires-in-days", "7")
    issued = await asyncio.to_thread(run_bodhi, *args, "--models", f"{model}, other/*", env=gateway.env)
    limited = issued.stdout.strip().splitlines()[-1]
    assert "expires " in issued.stdout
    assert f"models {model}, other/*" in issued.stdout
    elsewhere = await asyncio.to_thread(run_bodhi, *args, "--models", "other/*", env=gateway.env)
    excluded = elsewhere.stdout.strip().splitlines()[-1]

    for token, listed in ((limited, [model]), (excluded, [])):
        client = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key=token)
        try:
            assert [m.id for m in (await client.models.list()).data] == listed
            if not listed:
                with pytest.raises(openai.PermissionDeniedError) as refused:
                    await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
                assert refused.value.code == "model_not_allowed"
        finally:
            await client.close()

    for bad in (("--expires-in-days", "0"), ("--models", " , ")):
        refused_cli = await asyncio.to_thread(
            subprocess.run,
            bodhi("tokens", "create", "--user", username, *bad),
            env={**os.environ, **gateway.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert refused_cli.returncode != 0
        assert "bodhiapp_" not in refused_cli.stdout
        assert bad[0] in refused_cli.stderr


async def test_cli_tokens_may_have_rate_limits_and_a_budget(gateway: Gateway) -> None:
    username = f"cli-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(
        run_bodhi, "users", "create", username, "--role", "user", "--password-stdin", env=gateway.env, stdin=PASSWORD
    )
    args = ("tokens", "create", "--user", username, "--rpm", "30", "--tpm", "5000", "--budget", "100000")
    issued = await asyncio.to_thread(run_bodhi, *args, "--budget-period", "day", env=gateway.env)
    assert "30 requests/min, 5000 tokens/min, 100000 tokens/day" in issued.stdout
    assert issued.stdout.strip().splitlines()[-1].startswith("bodhiapp_")

    for bad in (("--rpm", "0"), ("--budget", "5")):  # a budget needs its period
        refused_cli = await asyncio.to_thread(
            subprocess.run,
            bodhi("tokens", "create", "--user", username, *bad),
            env={**os.environ, **gateway.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert refused_cli.returncode != 0
        assert "bodhiapp_" not in refused_cli.stdout
