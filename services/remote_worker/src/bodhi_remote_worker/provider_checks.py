"""The provider calls behind API models: list a provider's models, send it a tiny test request.

Every failure is a ``ProviderCheckFailed``: its message opens with the phrase the product shows, its ``code``
is stable, and no message ever holds the API key (the provider's own error text is masked before use). A whole
check, retries included, gives up after ``BODHI_PROVIDER_CHECK_TIMEOUT`` (``give_up_after``): a form waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from bodhi_remote_worker.provider_formats import adapter_for
from bodhi_remote_worker.secret_mask import SecretMask
from bodhi_remote_worker.upstream import Provider, auth_headers, map_httpx_errors, with_extra_headers
from bodhi_shared.errors import (
    ProviderCheckFailed,
    UpstreamAddressRefused,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

INVALID_API_KEY = "invalid_api_key"
NETWORK_ERROR = "network_error"
CONNECTION_FAILED = "connection_failed"
MODEL_NOT_FOUND = "model_not_found"
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"

PHRASES = {
    INVALID_API_KEY: "Invalid API key",
    NETWORK_ERROR: "Network error",
    CONNECTION_FAILED: "Connection failed",
    MODEL_NOT_FOUND: "Model not found",
    RATE_LIMIT_EXCEEDED: "Rate limit exceeded",
}

TEST_PROMPT = "Respond with only: test successful"
TEST_MAX_TOKENS = 16
DETAIL_LIMIT = 200  # characters of the provider's own error text kept in a message
_CAUSE_DEPTH = 8  # how far down an exception chain to look for an ssl.SSLError
_MENTIONS_MODEL = re.compile(r"\bmodels?\b", re.IGNORECASE)
PATH_HINT = "check the base URL's path (most providers' ends with /v1)"
# Anthropic lists its models in pages (20 by default, at most 1000 a page): the pages followed, at most.
ANTHROPIC_PAGE_SIZE = 1000
MAX_MODEL_PAGES = 10


@contextlib.asynccontextmanager
async def give_up_after(seconds: float, *, base_url: str) -> AsyncIterator[None]:
    """Bound a whole check, retries included: past ``seconds`` it is a "Connection failed" that says so."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        host = _host_of(base_url)
        raise ProviderCheckFailed(
            f"{PHRASES[CONNECTION_FAILED]}: no answer from {host} within {seconds:g} s; gave up.",
            code=CONNECTION_FAILED,
            status_code=504,
        ) from None


def check_target(
    *, base_url: str, api_key: str, api_format: str = "openai", extra_headers: Mapping[str, str] | None = None
) -> Provider:
    return Provider(base_url=base_url, api_key=api_key, api_format=api_format, extra_headers=dict(extra_headers or {}))


async def list_models(
    client: httpx.AsyncClient,
    *,
    base_url: str,
    api_key: str,
    api_format: str = "openai",
    extra_headers: Mapping[str, str] | None = None,
) -> list[str]:
    """The ids of the provider's models (``GET {base_url}/models``), de-duplicated, sorted regardless of case.

    Every format lists them as ``{"data": [{"id": ...}, ...]}``; Anthropic's list comes in pages (``has_more``,
    ``last_id``), followed up to ``MAX_MODEL_PAGES``."""
    target = check_target(base_url=base_url, api_key=api_key, api_format=api_format, extra_headers=extra_headers)
    paged = api_format == "anthropic"
    path = f"/models?limit={ANTHROPIC_PAGE_SIZE}" if paged else "/models"
    models: set[str] = set()
    for _ in range(MAX_MODEL_PAGES):
        response = await _send(client, target, "GET", path)
        if response.status_code >= 300:
            raise _status_failure(response, target, model=None)
        page = _json(response)
        models |= _model_ids(response, page)
        last = page.get("last_id")
        if not (paged and page.get("has_more") is True and isinstance(last, str) and last):
            break
        path = f"/models?limit={ANTHROPIC_PAGE_SIZE}&after_id={quote(last, safe='')}"
    return sorted(models, key=lambda model: (model.lower(), model))


def _model_ids(response: httpx.Response, page: dict[str, Any]) -> set[str]:
    data = page.get("data")
    if not isinstance(data, list) or not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in data):
        raise _malformed(response, 'no "data" list of models with string "id"s')
    return {entry["id"] for entry in data}


async def test_connection(
    client: httpx.AsyncClient,
    *,
    base_url: str,
    api_key: str,
    model: str,
    # PT028: the name is the product's "test connection", not a pytest test, so defaults are fine
    api_format: str = "openai",  # noqa: PT028
    extra_headers: Mapping[str, str] | None = None,  # noqa: PT028
    attempts: int = 3,  # noqa: PT028
    backoff_s: float = 0.5,  # noqa: PT028
) -> str:
    """Send ``model`` a tiny non-streamed chat completion (in the provider's format: a Messages request with
    ``max_tokens`` for Anthropic, a Response for the Responses API); return the assistant's reply (may be empty).

    Network errors, timeouts, 429 and 5xx are retried, ``attempts`` tries in all, after ``backoff_s``,
    ``2 * backoff_s``, ... Anything else (a bad key, an unknown model, a malformed answer) fails at once.
    """
    target = check_target(base_url=base_url, api_key=api_key, api_format=api_format, extra_headers=extra_headers)
    body = {"model": model, "messages": [{"role": "user", "content": TEST_PROMPT}], "max_tokens": TEST_MAX_TOKENS}
    attempt = 1
    while True:
        try:
            return await _test_once(client, target, body)
        except ProviderCheckFailed as exc:
            if attempt >= attempts or not is_transient(exc):
                raise
        await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
        attempt += 1


def is_transient(error: ProviderCheckFailed) -> bool:
    """Whether another attempt may succeed: a network error, a timeout, a 429 or a 5xx (never a TLS error)."""
    if error.code == MODEL_NOT_FOUND:
        return False
    if error.upstream_status is not None:
        return error.upstream_status == 429 or error.upstream_status >= 500
    cause = error.__cause__
    return isinstance(cause, httpx.TimeoutException | httpx.NetworkError) and not _is_tls_error(cause)


async def _test_once(client: httpx.AsyncClient, target: Provider, body: dict[str, Any]) -> str:
    adapter = adapter_for(target.api_format)
    path, sent = ("chat/completions", body) if adapter is None else adapter.request_from_chat(body)
    response = await _send(client, target, "POST", f"/{path}", json_body=sent)
    if response.status_code >= 300:
        raise _status_failure(response, target, model=str(body["model"]))
    answer = _json(response)
    if adapter is not None:
        try:
            answer = adapter.chat_from_response(answer, model=str(body["model"]))
        except UpstreamError:
            raise _malformed(response, f"not an answer of the `{target.api_format}` API format") from None
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise _malformed(response, "no choices[0].message")
    content = message.get("content")
    if content is None:  # some providers send null content (a reasoning model that spent its 16 tokens)
        return ""
    if not isinstance(content, str):
        raise _malformed(response, "choices[0].message.content is not text")
    return content


async def _send(
    client: httpx.AsyncClient, target: Provider, method: str, path: str, *, json_body: dict[str, Any] | None = None
) -> httpx.Response:
    """One exchange; httpx's failures become ``ProviderCheckFailed`` caused by the httpx error itself."""
    host = _host_of(target.base_url)
    try:
        request = client.build_request(
            method, f"{target.base_url.rstrip('/')}{path}", json=json_body, headers=_headers(target)
        )
    except httpx.InvalidURL as exc:
        raise _failure(CONNECTION_FAILED, "the base URL is not a valid URL.") from exc
    try:
        with map_httpx_errors(target):
            return await client.send(request)
    except UpstreamAddressRefused as exc:
        raise _failure(CONNECTION_FAILED, exc.message) from exc
    # map_httpx_errors' messages already open with our phrases and name only the host
    except UpstreamTimeout as exc:
        raise ProviderCheckFailed(exc.message, code=CONNECTION_FAILED, status_code=504) from exc.__cause__
    except UpstreamUnreachable as exc:
        if exc.__cause__ is not None and _is_tls_error(exc.__cause__):  # httpx reports TLS failures as ConnectError
            raise _failure(CONNECTION_FAILED, f"the TLS handshake with {host} failed.") from exc.__cause__
        raise ProviderCheckFailed(exc.message, code=NETWORK_ERROR) from exc.__cause__
    except UpstreamError as exc:
        raise ProviderCheckFailed(exc.message, code=CONNECTION_FAILED) from exc.__cause__


def _headers(target: Provider) -> dict[str, str]:
    """The API model's extra headers, then the key in the format's header (none for a keyless provider)."""
    adapter = adapter_for(target.api_format)
    own = auth_headers(target.api_key) if adapter is None else adapter.headers(target.api_key)
    return with_extra_headers(target.extra_headers, own)


def _status_failure(response: httpx.Response, target: Provider, *, model: str | None) -> ProviderCheckFailed:
    """Map a non-2xx status; a 404 means an unknown model only when the provider's error says so (a 404 on the
    route itself, as from a base URL without its /v1, is a wrong URL)."""
    status = response.status_code
    upstream_code, upstream_message, is_json = _error_fields(response)
    if upstream_code == MODEL_NOT_FOUND or (status == 404 and model and is_json and _mentions(upstream_message, model)):
        code = MODEL_NOT_FOUND
    elif status in (401, 403):
        code = INVALID_API_KEY
    elif status == 429:
        code = RATE_LIMIT_EXCEEDED
    else:
        code = CONNECTION_FAILED
    detail = f"{response.request.url.host} answered HTTP {status}"
    if upstream_message:
        detail = f"{detail}: {_redact(upstream_message, target.api_key)}"
    if status < 400:
        detail = f"{detail} (a redirect, which is not followed); check the base URL"
    elif status == 404 and code == CONNECTION_FAILED:
        detail = f"{detail}; {PATH_HINT}"
    return _failure(code, detail, upstream_status=status)


def _mentions(message: str, model: str) -> bool:
    return model in message or _MENTIONS_MODEL.search(message) is not None


def _error_fields(response: httpx.Response) -> tuple[str | None, str, bool]:
    """The provider's error code and message, from an OpenAI-shaped body or a short plain-text one, and whether
    the body was a JSON error at all."""
    try:
        payload = response.json()
    except ValueError:
        text = response.text.strip()
        return None, ("" if text.startswith("<") else text), False  # an HTML error page says nothing in a line
    if not isinstance(payload, dict):
        return None, "", False
    error = payload.get("error")
    if isinstance(error, str):
        return None, error, True
    fields = error if isinstance(error, dict) else payload
    code, message = fields.get("code"), fields.get("message") or fields.get("detail")
    return (code if isinstance(code, str) else None), (message if isinstance(message, str) else ""), True


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        raise _malformed(response, "the answer is not JSON") from None
    if not isinstance(payload, dict):
        raise _malformed(response, "the answer is not a JSON object")
    return payload


def _malformed(response: httpx.Response, what: str) -> ProviderCheckFailed:
    host = response.request.url.host
    return _failure(CONNECTION_FAILED, f"unexpected answer from {host}: {what}.", upstream_status=response.status_code)


def _failure(code: str, detail: str, *, upstream_status: int | None = None) -> ProviderCheckFailed:
    return ProviderCheckFailed(f"{PHRASES[code]}: {detail}", code=code, upstream_status=upstream_status)


def _redact(text: str, api_key: str) -> str:
    """One line of at most ``DETAIL_LIMIT`` characters, the key and key-shaped tokens cut out (some providers
    echo the key back), masked before it is cut short so no piece of a key survives the cut."""
    line = SecretMask(api_key).text(" ".join(text.split()))
    if len(line) > DETAIL_LIMIT:
        line = line[: DETAIL_LIMIT - 1].rstrip() + "…"
    return line


def _host_of(base_url: str) -> str:
    try:
        return httpx.URL(base_url).host or "the provider"
    except httpx.InvalidURL:
        return "the provider"


def _is_tls_error(exc: BaseException) -> bool:
    """Whether ``exc`` or one of its causes is an ``ssl.SSLError`` (httpx wraps those in ``ConnectError``)."""
    seen: BaseException | None = exc
    for _ in range(_CAUSE_DEPTH):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
