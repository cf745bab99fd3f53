"""The remote worker's client refuses forbidden provider addresses at connect time, against real servers."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bodhi_remote_worker.guarded_transport import Resolver, provider_client, system_resolver
from bodhi_remote_worker.settings import RemoteWorkerSettings
from bodhi_remote_worker.upstream import Provider, forward
from bodhi_shared.errors import UpstreamAddressRefused, UpstreamError, UpstreamUnreachable
from bodhi_shared.upstream_addresses import PRIVATE_HINT
from tests.support.fake_upstream import FakeUpstream, Script

KEY = "sk-guard-" + "s3cr3t" * 4
RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


def client(
    *, allow_private: bool, verify: ssl.SSLContext | bool = True, resolver: Resolver = system_resolver
) -> httpx.AsyncClient:
    """The worker's own client (``provider_client``), with the policy under test."""
    settings = RemoteWorkerSettings(allow_private_upstreams=allow_private, upstream_read_timeout=10)
    return provider_client(settings, verify=verify, resolver=resolver)


async def chat(http: httpx.AsyncClient, base_url: str, model: str) -> bytes:
    return await forward(http, Provider(base_url=base_url, api_key=KEY), f'{{"model": "{model}"}}'.encode())


async def test_a_name_resolving_to_loopback_is_refused_at_connect(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["guard-localhost"] = Script()
    async with client(allow_private=False) as http:
        with pytest.raises(UpstreamAddressRefused) as caught:
            await chat(http, f"http://localhost:{fake_upstream.port}/v1", "guard-localhost")

    error = caught.value
    assert error.status_code == 502
    assert error.code == "upstream_address_refused"
    assert "localhost" in error.message
    assert "127.0.0.1 is a loopback address" in error.message
    assert PRIVATE_HINT in error.message
    assert KEY not in error.message
    assert fake_upstream.requests_for("guard-localhost") == []


async def test_the_same_name_connects_when_private_is_allowed(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["guard-allowed"] = Script(chunks=1, text="hi")
    async with client(allow_private=True) as http:
        body = await chat(http, f"http://localhost:{fake_upstream.port}/v1", "guard-allowed")

    assert b"hi0" in body
    assert fake_upstream.requests_for("guard-allowed")[-1].headers["host"] == f"localhost:{fake_upstream.port}"


@pytest.mark.parametrize(
    ("base_url", "private"),
    [
        ("http://127.0.0.1:{port}/v1", True),
        ("http://2130706433:{port}/v1", True),  # 127.0.0.1 in decimal
        ("http://[::ffff:127.0.0.1]:{port}/v1", True),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://0xa9fea9fe/", False),
        ("http://metadata.google.internal/computeMetadata/v1", False),
    ],
)
async def test_refused_literals_and_metadata_names_never_reach_a_socket(
    fake_upstream: FakeUpstream, base_url: str, private: bool
) -> None:
    async with client(allow_private=False) as http:
        with pytest.raises(UpstreamAddressRefused) as caught:
            await chat(http, base_url.format(port=fake_upstream.port), "guard-literal")

    assert (PRIVATE_HINT in caught.value.message) is private
    assert fake_upstream.requests_for("guard-literal") == []


@pytest.mark.parametrize("allow_private", [False, True])
async def test_a_url_with_credentials_is_refused(fake_upstream: FakeUpstream, allow_private: bool) -> None:
    async with client(allow_private=allow_private) as http:
        with pytest.raises(UpstreamAddressRefused, match="user name or password") as caught:
            await chat(http, f"http://admin:hunter22@127.0.0.1:{fake_upstream.port}/v1", "guard-userinfo")

    assert "hunter22" not in caught.value.message
    assert fake_upstream.requests_for("guard-userinfo") == []


async def test_one_refused_address_among_many_refuses_the_name(fake_upstream: FakeUpstream) -> None:
    """DNS rebinding: a name that also resolves to the metadata service is refused, whatever comes first."""

    async def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "169.254.169.254"]

    async with client(allow_private=True, resolver=rebinding) as http:
        with pytest.raises(UpstreamAddressRefused, match=r"169\.254\.169\.254") as caught:
            await chat(http, f"http://provider.example:{fake_upstream.port}/v1", "guard-rebind")

    assert PRIVATE_HINT not in caught.value.message  # allowing private addresses would not help
    assert fake_upstream.requests_for("guard-rebind") == []


async def test_the_checked_address_is_the_one_dialled(fake_upstream: FakeUpstream) -> None:
    """The name is resolved once, by the check; the connection goes to what the check saw."""

    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    fake_upstream.scripts["guard-dialled"] = Script(chunks=1)
    async with client(allow_private=True, resolver=to_loopback) as http:
        await chat(http, f"http://provider.example:{fake_upstream.port}/v1", "guard-dialled")

    assert fake_upstream.requests_for("guard-dialled")[-1].headers["host"] == f"provider.example:{fake_upstream.port}"


async def test_an_unknown_name_is_unreachable() -> None:
    async with client(allow_private=True) as http:
        with pytest.raises(UpstreamUnreachable, match="Network error"):
            await chat(http, "http://no-such-host.invalid/v1", "guard-nxdomain")


async def test_a_redirect_is_an_error_and_never_followed(fake_upstream: FakeUpstream) -> None:
    fake_upstream.scripts["guard-307"] = Script(redirect_to="http://169.254.169.254/latest/meta-data/")
    async with client(allow_private=True) as http:
        with pytest.raises(UpstreamError) as caught:
            await chat(http, fake_upstream.base_url, "guard-307")

    error = caught.value
    assert error.status_code == 502
    assert error.code == "upstream_redirect"
    assert "HTTP 307" in error.message
    assert len(fake_upstream.requests_for("guard-307")) == 1


# --- TLS: the connection dials the checked address, the handshake still names (and verifies) the URL's host ---


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[int, ssl.SSLContext, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only ``localhost`` (no address: only the host name can
    match); yields its port, a client context trusting it, and the SNI names it was greeted with."""
    cert_pem, key_pem = _self_signed("localhost")
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    greeted: list[str | None] = []

    def note_sni(_sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        greeted.append(name)

    server_context.sni_callback = note_sni

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"object": "list", "data": [{"id": "tls-model"}]}'
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    client_context = ssl.create_default_context(cadata=cert_pem.decode())
    async with server:
        yield port, client_context, greeted


async def test_tls_verifies_the_url_host_while_dialling_the_checked_address(
    tls_server: tuple[int, ssl.SSLContext, list[str | None]],
) -> None:
    port, trusted, greeted = tls_server
    async with client(allow_private=True, verify=trusted) as http:
        response = await http.get(f"https://localhost:{port}/v1/models")

    assert response.json()["data"] == [{"id": "tls-model"}]
    assert greeted == ["localhost"]  # dialled 127.0.0.1, but the handshake named the URL's host


async def test_tls_refuses_a_certificate_for_another_host(
    tls_server: tuple[int, ssl.SSLContext, list[str | None]],
) -> None:
    port, trusted, _ = tls_server

    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with client(allow_private=True, verify=trusted, resolver=to_loopback) as http:
        with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED"):
            await http.get(f"https://provider.example:{port}/v1/models")


def _self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.mark.parametrize("drop", ["close", "reset"])
async def test_a_kept_alive_connection_the_provider_dropped_is_retried_on_a_fresh_one(drop: str) -> None:
    """A provider closes an idle kept-alive connection just as the worker reuses it (both sides' idle timeouts are
    often 5 s): "Server disconnected without sending a response". Before, the client got 502 for a request the
    provider never saw; now the worker sends it once more, on a new connection."""
    answer = b'{"id": "c", "object": "chat.completion", "choices": []}'
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = len(served)
        served.append(0)
        while (head := await reader.readuntil(b"\r\n\r\n")) is not None:
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            await reader.readexactly(length)
            if connection == 0 and served[0] == 1:  # the first connection's second request: dropped unanswered
                if drop == "reset":  # a reset (RST) instead of a close
                    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
                break
            served[connection] += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(answer), answer)
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with client(allow_private=True) as http:
            first = await chat(http, f"http://127.0.0.1:{port}/v1", "m")
            second = await chat(http, f"http://127.0.0.1:{port}/v1", "m")
    finally:
        server.close()
        await server.wait_closed()

    assert first == second == answer
    assert served == [1, 1]  # the dropped request went again, on a second connection
