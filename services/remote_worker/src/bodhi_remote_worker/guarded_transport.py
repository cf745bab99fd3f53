"""The remote worker's HTTP client: it connects only to addresses ``upstream_addresses`` allows.

A base URL is checked when it is saved, but a name can resolve elsewhere later (DNS rebinding), so the check that
counts happens here, at connect time: the connection resolves the host itself, refuses if *any* address it
resolves to is refused, and connects to the very address it checked. TLS still verifies the URL's host name
(httpcore sends the origin's host as SNI and checks the certificate against it, whatever address it dialled).

Before that, a URL with a user name or password, or whose host is refused as written (an IP literal in any
spelling, a metadata host name), is refused without a lookup. Redirects are never followed, and no proxy from
the environment is used (a proxy would resolve names where this check cannot see).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
import typing
from collections.abc import Awaitable, Callable

import httpcore
import httpx

from bodhi_remote_worker.settings import RemoteWorkerSettings
from bodhi_shared.errors import UpstreamAddressRefused
from bodhi_shared.upstream_addresses import parse_address, refused_address, refused_host

log = logging.getLogger(__name__)

KEEPALIVE_EXPIRY_S = 4.0

# host, port -> the addresses it resolves to, as text; the default asks the system resolver without blocking
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend (its public extension point for opening connections), with the address check."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self._allow_private = allow_private
        self._resolve = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface: it passes the connect timeout)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        addresses = await self._checked_addresses(host, port, timeout)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # in the resolver's order, as the system's own connect would try them
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=left, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # _checked_addresses never returns an empty list
        raise failure

    async def _checked_addresses(self, host: str, port: int, wait_s: float | None) -> list[str]:
        """Every address ``host`` resolves to, all allowed; a refused one refuses the connection."""
        if (literal := parse_address(host)) is not None:
            addresses = [_dialable(host, literal)]
        else:
            try:
                async with asyncio.timeout(wait_s):
                    addresses = list(dict.fromkeys(await self._resolve(host, port)))
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
            except OSError as exc:  # socket.gaierror: no such name, no resolver
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            parsed = parse_address(address)
            if parsed is None:  # a resolver answers addresses; anything else is not something to dial
                raise UpstreamAddressRefused(host=host, reason=f"it resolves to {address!r}, not an address")
            if reason := refused_address(parsed, allow_private=self._allow_private):
                raise UpstreamAddressRefused(
                    host=host, reason=reason, private=refused_address(parsed, allow_private=True) is None
                )
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("providers are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _dialable(host: str, parsed: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The literal as a standard address (``2852039166`` dials as the IPv4 address it spells)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return str(parsed)


def refuse_url(url: httpx.URL, *, allow_private: bool) -> None:
    """Refuse, before any lookup, a URL with credentials in it or whose host is refused as written."""
    if url.userinfo:  # credentials in a URL end up in logs and Referer headers; providers take keys in headers
        raise UpstreamAddressRefused(host=url.host, reason="the URL holds a user name or password")
    if reason := refused_host(url.host, allow_private=allow_private):
        private = refused_host(url.host, allow_private=True) is None
        raise UpstreamAddressRefused(host=url.host, reason=reason, private=private)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its request, response and error translation), over a ``GuardedBackend``."""

    def __init__(
        self,
        *,
        allow_private: bool,
        limits: httpx.Limits,
        verify: ssl.SSLContext | bool = True,  # tests pass a context that trusts their own certificate
        resolver: Resolver = system_resolver,
    ) -> None:
        super().__init__(limits=limits)
        self._allow_private = allow_private
        # httpx 0.28's transport takes no network backend, but its connection pool (httpcore's, public) does.
        # Replacing the pool it built is the one private attribute we touch: the alternative is copying httpx's
        # request/response/exception translation, which every error mapping in upstream.py relies on.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private, resolver=resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        refuse_url(request.url, allow_private=self._allow_private)
        try:
            return await super().handle_async_request(request)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            # "Server disconnected without sending a response" or a reset: the provider closed a kept-alive
            # connection just as it was reused (idle timeouts are often 5 s). Nothing was answered, so the request
            # goes once more, on a fresh connection. Only before the response begins: a stream cut later is not.
            log.info("%s dropped a kept-alive connection (%s); sending again", request.url.host, exc)
            return await super().handle_async_request(request)


def provider_client(
    settings: RemoteWorkerSettings, *, verify: ssl.SSLContext | bool = True, resolver: Resolver = system_resolver
) -> httpx.AsyncClient:
    """The client every provider call of a remote worker goes through."""
    # Idle connections are dropped after 4 s: before the 5 s after which many servers (uvicorn, Node) close them,
    # which would race with their reuse.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=100, keepalive_expiry=KEEPALIVE_EXPIRY_S)
    return httpx.AsyncClient(
        transport=GuardedTransport(
            allow_private=settings.allow_private_upstreams, limits=limits, verify=verify, resolver=resolver
        ),
        timeout=httpx.Timeout(settings.upstream_read_timeout, connect=settings.upstream_connect_timeout),
        follow_redirects=False,  # httpx's default, said aloud: a 30x is relayed as an error, never followed
    )
