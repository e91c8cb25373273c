"""Address arithmetic of IPAM, on the stdlib `ipaddress` types: no database, no HTTP.

Inside a prefix an address is known by its offset from the network address. Offsets are what
the database stores and searches (a 64-bit integer, whatever the family), so an IPv6 prefix
hands out only its first `OFFSET_LIMIT` addresses: more than any fleet will ever ask for.
"""

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

OFFSET_LIMIT = 2**62
"""The highest offset allocated in a prefix; far below 2**63, so `offset + 1` never
overflows a BIGINT."""


class PrefixRole(StrEnum):
    """What a prefix's addresses are for; the discovery flow allocates by site and role."""

    BMC = "bmc"
    DISCOVERY = "discovery"
    PROVISIONING = "provisioning"
    PRODUCTION = "production"


def parse_address(text: str) -> Address:
    """An IPv4 or IPv6 address; ValueError saying what is wrong."""
    if "%" in text:
        raise ValueError(f"{text!r} carries a zone (%…); give the address alone")
    try:
        return ip_address(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address; write it like 10.0.0.5 or 2001:db8::5"
        ) from None


def parse_network(text: str) -> Network:
    """A CIDR prefix without host bits set; ValueError saying what is wrong (and the fix)."""
    text = text.strip()
    if "/" not in text:
        raise ValueError(f"{text!r} has no prefix length; write it like 10.0.0.0/24")
    if "%" in text:
        raise ValueError(f"{text!r} carries a zone (%…); give the prefix alone")
    try:
        return ip_network(text)
    except ValueError as error:
        try:
            loose = ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a CIDR prefix ({error}); write it like 10.0.0.0/24 "
                "or 2001:db8::/64"
            ) from None
        raise ValueError(f"{text!r} has host bits set; did you mean {loose}?") from None


def normal_address(text: str) -> str:
    return str(parse_address(text))


def normal_network(text: str) -> str:
    return str(parse_network(text))


@dataclass(frozen=True)
class Span:
    """The offsets a prefix can hand out: `first` to `last`, both included."""

    first: int
    last: int


def host_span(network: Network) -> Span:
    """Like `network.hosts()`: IPv4 keeps network and broadcast addresses out (except in a
    /31 or /32), IPv6 its subnet-router anycast address (except in a /127 or /128)."""
    size = network.num_addresses
    if size <= 2:
        first, last = 0, size - 1
    elif network.version == 4:
        first, last = 1, size - 2
    else:
        first, last = 1, size - 1
    return Span(first, min(last, OFFSET_LIMIT))


def free_segments(span: Span, used: list[Span]) -> list[Span]:
    """The stretches of `span` that none of `used` covers, lowest first."""
    segments = []
    at = span.first
    for taken in sorted(used, key=lambda s: s.first):
        if taken.first > span.last:
            break
        if taken.first > at:
            segments.append(Span(at, taken.first - 1))
        at = max(at, taken.last + 1)
    if at <= span.last:
        segments.append(Span(at, span.last))
    return segments


def offset_of(network: Network, address: Address) -> int:
    return int(address) - int(network.network_address)


def address_at(network: Network, offset: int) -> Address:
    return network.network_address + offset


def contains(network: Network, address: Address) -> bool:
    return address.version == network.version and address in network


def bounds_key(network: Network) -> tuple[bytes, bytes]:
    """The first and last address as 16 big-endian bytes: ordered the same on every backend,
    so overlaps and containment are range comparisons in SQL."""
    return as_key(network.network_address), as_key(network.broadcast_address)


def as_key(address: Address) -> bytes:
    return int(address).to_bytes(16, "big")
