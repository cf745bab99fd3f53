"""Provider checks for API models (list models, test connection) against the fake upstream on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

# the module, not its names: pytest would collect a bare ``test_connection`` as a test
from bodhi_remote_worker import provider_checks
from bodhi_remote_worker.guarded_transport import provider_client
from bodhi_remote_worker.settings import RemoteWorkerSettings
from bodhi_shared.errors import ProviderCheckFailed
from tests.support.fake_upstream import FakeUpstream, Script, free_port

KEY = "sk-check-" + "s3cr3t" * 4
FAST = 0.01  # backoff seconds, so retry tests stay quick


@pytest.fixture
def fake(fake_upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    """The session's fake upstream, its ``/v1/models`` switches put back after the test."""
    yield fake_upstream
    fake_upstream.reset_model_list()


async def test_models_are_sorted_regardless_of_case_and_deduplicated(fake: FakeUpstream) -> None:
    fake.models_ids = ["Zeta", "alpha", "Mid", "alpha"]
    async with httpx.AsyncClient() as client:
        models = await provider_checks.list_models(client, base_url=fake.base_url, api_key=KEY)

    assert models == ["alpha", "Mid", "Zeta"]
    assert fake.model_list_requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_keyless_provider_sends_no_authorization(fake: FakeUpstream) -> None:
    fake.models_ids = ["local"]
    async with httpx.AsyncClient() as client:
        models = await provider_checks.list_models(client, base_url=fake.base_url, api_key="")

    assert models == ["local"]
    assert "authorization" not in fake.model_list_requests[-1].headers


async def test_key_shaped_tokens_are_cut_from_messages(fake: FakeUpstream) -> None:
    other = "sk-" + "0th3r" * 5  # a provider echoing a key that is not even ours
    body = {"error": {"message": f"Key {other} is revoked", "type": "invalid_request_error", "code": None}}
    fake.scripts["check-echo"] = Script(status=400, error_body=body)
    with pytest.raises(ProviderCheckFailed) as caught:
        await _check(fake, "check-echo")

    assert other not in caught.value.message
    assert "Key [redacted] is revoked" in caught.value.message


async def test_bad_key_is_invalid_api_key_without_the_key(fake: FakeUpstream) -> None:
    fake.models_required_key = "sk-the-right-one"
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProviderCheckFailed) as caught:
            await provider_checks.list_models(client, base_url=fake.base_url, api_key=KEY)

    error = caught.value
    assert error.code == "invalid_api_key"
    assert error.message.startswith("Invalid API key: ")
    assert error.upstream_status == 401
    assert "Incorrect API key provided" in error.message  # the provider's own words, key cut out
    assert KEY not in error.message
    assert KEY.encode() not in error.to_json()


async def test_connection_refused_is_network_error() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProviderCheckFailed) as caught:
            await provider_checks.list_models(client, base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=KEY)

    assert caught.value.code == "network_error"
    assert caught.value.message.startswith("Network error: ")


async def test_non_json_models_body_is_connection_failed(fake: FakeUpstream) -> None:
    fake.models_raw_body = b"<html>welcome to the router</html>"
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProviderCheckFailed) as caught:
            await provider_checks.list_models(client, base_url=fake.base_url, api_key=KEY)

    assert caught.value.code == "connection_failed"
    assert caught.value.message.startswith("Connection failed: ")


async def test_tls_failure_is_connection_failed(fake: FakeUpstream) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProviderCheckFailed) as caught:
            # https against a plain-HTTP server: the TLS handshake fails
            await provider_checks.list_models(client, base_url=f"https://127.0.0.1:{fake.port}/v1", api_key=KEY)

    assert caught.value.code == "connection_failed"
    assert "TLS" in caught.value.message
    assert not provider_checks.is_transient(caught.value)


async def test_connection_returns_the_reply(fake: FakeUpstream) -> None:
    fake.scripts["check-ok"] = Script(chunks=2, text="ok")
    async with httpx.AsyncClient() as client:
        reply = await provider_checks.test_connection(client, base_url=fake.base_url, api_key=KEY, model="check-ok")

    assert reply == "ok0 ok1 "
    [sent] = fake.requests_for("check-ok")
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body == {
        "model": "check-ok",
        "messages": [{"role": "user", "content": "Respond with only: test successful"}],
        "max_tokens": 16,
    }


async def test_unknown_model_is_model_not_found_and_not_retried(fake: FakeUpstream) -> None:
    fake.scripts["check-404"] = Script(status=404)  # OpenAI's own 404: code model_not_found
    with pytest.raises(ProviderCheckFailed) as caught:
        await _check(fake, "check-404")

    assert caught.value.code == "model_not_found"
    assert caught.value.message.startswith("Model not found: ")
    assert len(fake.requests_for("check-404")) == 1


async def test_a_404_saying_the_model_is_missing_is_model_not_found(fake: FakeUpstream) -> None:
    """Ollama's way: no code, but a JSON error that names the model."""
    fake.scripts["check-ollama"] = Script(status=404, error_body={"error": 'model "check-ollama" not found'})
    with pytest.raises(ProviderCheckFailed) as caught:
        await _check(fake, "check-ollama")

    assert caught.value.code == "model_not_found"


async def test_a_404_on_the_route_is_connection_failed_with_a_path_hint(fake: FakeUpstream) -> None:
    fake.scripts["check-no-v1"] = Script()
    root = fake.base_url.removesuffix("/v1")  # the base URL without its /v1: the route itself is not found
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProviderCheckFailed) as caught:
            await provider_checks.test_connection(
                client, base_url=root, api_key=KEY, model="check-no-v1", backoff_s=FAST
            )

    assert caught.value.code == "connection_failed"
    assert caught.value.message.startswith("Connection failed: ")
    assert "HTTP 404" in caught.value.message
    assert "/v1" in caught.value.message
    assert fake.requests_for("check-no-v1") == []


async def test_a_json_404_not_about_the_model_is_connection_failed(fake: FakeUpstream) -> None:
    fake.scripts["check-detail"] = Script(status=404, error_body={"detail": "Not Found"})  # FastAPI's unknown route
    with pytest.raises(ProviderCheckFailed) as caught:
        await _check(fake, "check-detail")

    assert caught.value.code == "connection_failed"
    assert "ends with /v1" in caught.value.message


async def test_a_redirect_is_connection_failed_and_not_followed(fake: FakeUpstream) -> None:
    fake.scripts["check-307"] = Script(redirect_to="http://169.254.169.254/latest/meta-data/")
    with pytest.raises(ProviderCheckFailed) as caught:
        await _check(fake, "check-307")

    assert caught.value.code == "connection_failed"
    assert "HTTP 307" in caught.value.message
    assert len(fake.requests_for("check-307")) == 1


async def test_a_hanging_provider_gives_up_at_the_deadline_retries_included(fake: FakeUpstream) -> None:
    fake.scripts["check-hang"] = Script(hang=True)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        with pytest.raises(ProviderCheckFailed) as caught:
            async with provider_checks.give_up_after(0.5, base_url=fake.base_url):
                await provider_checks.test_connection(client, base_url=fake.base_url, api_key=KEY, model="check-hang")

    assert time.monotonic() - started < 2
    assert caught.value.code == "connection_failed"
    assert caught.value.message == "Connection failed: no answer from 127.0.0.1 within 0.5 s; gave up."


async def test_a_refused_address_is_connection_failed(fake: FakeUpstream) -> None:
    settings = RemoteWorkerSettings(allow_private_upstreams=False)
    async with provider_client(settings) as client:
        with pytest.raises(ProviderCheckFailed) as caught:
            await provider_checks.list_models(client, base_url=f"http://localhost:{fake.port}/v1", api_key=KEY)

    assert caught.value.code == "connection_failed"
    assert caught.value.message.startswith("Connection failed: Bodhi does not connect to the provider at localhost")
    assert "BODHI_ALLOW_PRIVATE_UPSTREAMS" in caught.value.message


async def test_model_not_found_code_in_body_wins(fake: FakeUpstream) -> None:
    body = {
        "error": {"message": "The model does not exist", "type": "invalid_request_error", "code": "model_not_found"}
    }
    fake.scripts["check-gone"] = Script(status=400, error_body=body)
    with pytest.raises(ProviderCheckFailed) as caught:
        await _check(fake, "check-gone")

    assert caught.value.code == "model_not_found"
    assert "The model does not exist" in caught.value.message


async def test_rate_limit_twice_then_success(fake: FakeUpstream) -> None:
    fake.scripts["check-429"] = Script(chunks=1, text="fine", leading_failures=[429, 429])
    assert await _check(fake, "check-429") == "fine0 "
    assert len(fake.requests_for("check-429")) == 3


async def test_persistent_rate_limit_is_rate_limit_exceeded(fake: FakeUpstream) -> None:
    fake.scripts["check-429-always"] = Script(status=429)
    with pytest.raises(ProviderCheckFailed) as caught:
        await _check(fake, "check-429-always", attempts=2)

    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.message.startswith("Rate limit exceeded: ")
    assert len(fake.requests_for("check-429-always")) == 2


async def test_persistent_server_error_fails_after_three_attempts(fake: FakeUpstream) -> None:
    fake.scripts["check-500"] = Script(status=500)
    with pytest.raises(ProviderCheckFailed) as caught:
        await _check(fake, "check-500")

    assert caught.value.code == "connection_failed"
    assert caught.value.upstream_status == 500
    assert len(fake.requests_for("check-500")) == 3


async def test_bad_key_is_not_retried(fake: FakeUpstream) -> None:
    fake.scripts["check-401"] = Script(status=401)
    with pytest.raises(ProviderCheckFailed) as caught:
        await _check(fake, "check-401")

    assert caught.value.code == "invalid_api_key"
    assert len(fake.requests_for("check-401")) == 1


async def test_timeout_is_connection_failed_after_retries(fake: FakeUpstream) -> None:
    fake.scripts["check-slow"] = Script(latency=1.0)
    async with httpx.AsyncClient(timeout=0.2) as client:
        with pytest.raises(ProviderCheckFailed) as caught:
            await provider_checks.test_connection(
                client, base_url=fake.base_url, api_key=KEY, model="check-slow", backoff_s=FAST
            )

    assert caught.value.code == "connection_failed"
    assert caught.value.status_code == 504
    assert len(fake.requests_for("check-slow")) == 3


async def _check(fake: FakeUpstream, model: str, *, attempts: int = 3) -> str:
    async with httpx.AsyncClient() as client:
        return await provider_checks.test_connection(
            client, base_url=fake.base_url, api_key=KEY, model=model, attempts=attempts, backoff_s=FAST
        )
