"""Which addresses a provider's base URL may point at: the rule the API checks on save and workers at connect.

Refused always: link-local addresses (169.254.0.0/16, fe80::/10, where cloud metadata services live), the AWS
IPv6 metadata address, the unspecified and multicast ranges, and the well-known metadata host names.
Refused unless ``BODHI_ALLOW_PRIVATE_UPSTREAMS`` is set: loopback and private ranges (a self-hosted provider on
the LAN is common, so an operator may allow them; one person's ``bodhi serve`` does by default).

IPv4 literals are read the way the C resolver reads them (``2852039166``, ``0xa9fea9fe``, ``169.254.43518``), and
IPv4-mapped, -compatible, NAT64 and 6to4 IPv6 addresses are judged by the IPv4 address inside, so no spelling
slips past.
"""

from __future__ import annotations

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_ALWAYS_REFUSED = (
    ipaddress.ip_network("169.254.0.0/16"),  # link-local: AWS, GCP, Azure, OpenStack metadata
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.ip_network("0.0.0.0/8"),  # "this network": 0.0.0.0 reaches the local host
    ipaddress.ip_network("::/128"),
    ipaddress.ip_network("224.0.0.0/4"),
    ipaddress.ip_network("ff00::/8"),
    ipaddress.ip_network("255.255.255.255/32"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells, in any form a resolver accepts, or None for a name."""
    text = host.strip().strip("[]").rstrip(".")
    if "%" in text:  # an IPv6 zone id (fe80::1%eth0)
        text = text.split("%", 1)[0]
    try:
        return _unmapped(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not text or not all(c.isalnum() or c == "." for c in text) or ":" in text:
        return None
    try:  # inet_aton reads decimal, octal, hex and shortened dotted IPv4 forms, as connect() would
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:  # 2002:a9fe:a9fe:: carries 169.254.169.254 and is sent towards it
            return address.sixtofour
        if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
            return ipaddress.IPv4Address(int(address))
    return address


def refused_address(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a connection to ``address`` is refused, or None if it is allowed."""
    address = _unmapped(address)
    if any(address in network for network in _ALWAYS_REFUSED):
        return f"{address} is a link-local, metadata or reserved address"
    if allow_private:
        return None
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_private or address.is_reserved or address.is_link_local or not address.is_global:
        return f"{address} is a private address"
    return None


def refused_host(host: str, *, allow_private: bool) -> str | None:
    """Why ``host`` (a URL's host: a name or an IP literal) is refused before any lookup, or None.

    Names other than the metadata ones pass here (``localhost`` too): what they resolve to is checked when a
    worker connects, since DNS can change after a save.
    """
    name = host.strip().strip("[]").rstrip(".").lower()
    if name in METADATA_HOSTS:
        return f"{name} is a cloud metadata service"
    address = parse_address(name)
    if address is None:
        return None
    return refused_address(address, allow_private=allow_private)


PRIVATE_HINT = (
    "Set BODHI_ALLOW_PRIVATE_UPSTREAMS=true on the API and the remote workers to allow loopback and private "
    "addresses (a provider on your own network)."
)
