"""Which provider addresses are refused, in every spelling a resolver accepts."""

from __future__ import annotations

import ipaddress

import pytest

from bodhi_shared.upstream_addresses import parse_address, refused_address, refused_host

METADATA_V4 = ipaddress.IPv4Address("169.254.169.254")


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "::ffff:169.254.169.254",
        "2852039166",  # decimal
        "0xa9fea9fe",  # hex
        "0XA9FEA9FE",
        "0251.0376.0251.0376",  # octal
        "169.254.43518",  # shortened dotted form
        "[64:ff9b::a9fe:a9fe]",  # NAT64
        "[2002:a9fe:a9fe::1]",  # 6to4
    ],
)
def test_every_spelling_of_the_metadata_address_is_that_address(host: str) -> None:
    assert parse_address(host) == METADATA_V4


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "2852039166",
        "0xa9fea9fe",
        "metadata.google.internal",
        "METADATA.google.internal.",
        "fd00:ec2::254",
        "[fd00:ec2::254]",
        "fe80::1",
        "[fe80::1%25eth0]",
        "0.0.0.0",
        "224.0.0.1",
    ],
)
def test_metadata_and_link_local_are_refused_even_when_private_is_allowed(host: str, allow_private: bool) -> None:
    assert refused_host(host, allow_private=allow_private) is not None


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.1", "loopback"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("10.0.0.1", "private"),
        ("192.168.1.20", "private"),
        ("172.16.0.5", "private"),
        ("[fd12:3456::1]", "private"),
        ("100.64.0.1", "private"),  # carrier-grade NAT: not on the internet
    ],
)
def test_loopback_and_private_are_refused_unless_allowed(host: str, reason: str) -> None:
    refused = refused_host(host, allow_private=False)

    assert refused is not None
    assert reason in refused
    assert refused_host(host, allow_private=True) is None


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]", "api.openai.com", "localhost"])
def test_public_addresses_and_names_pass_the_host_check(host: str) -> None:
    # names (localhost too) are judged by what they resolve to, when a worker connects
    assert refused_host(host, allow_private=False) is None


def test_a_public_address_is_allowed() -> None:
    assert refused_address(ipaddress.ip_address("8.8.8.8"), allow_private=False) is None
    assert refused_address(ipaddress.ip_address("2606:4700:4700::1111"), allow_private=False) is None


@pytest.mark.parametrize("allow_private", [False, True])
def test_mapped_metadata_address_is_judged_by_the_ipv4_inside(allow_private: bool) -> None:
    mapped = ipaddress.ip_address("::ffff:169.254.169.254")

    assert refused_address(mapped, allow_private=allow_private) is not None


@pytest.mark.parametrize("name", ["api.openai.com", "localhost", "my-provider.internal", "", "1.2.3.4.5", "١٢٧.0.0.1"])
def test_names_are_not_addresses(name: str) -> None:
    assert parse_address(name) is None
