"""Where a BMC credential may go: the networks an admin allowed it, checked against every
address a connection would reach.

A write-scope user may edit an asset's BMC address, so the address is untrusted. Two
checks keep a credential inside its networks:
- before connecting, the host named by the address, and every address it resolves to
  (`outside`), for a clear error naming the asset;
- on every connection a driver opens, the address it actually reached, before a byte is
  sent (`check_peer`). This one does not depend on the address being parsed the way the
  protocol library parses it, nor on DNS answering twice the same, nor on where a BMC
  redirects or links to.
"""

import re
import socket
from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from metalyard.errors import BmcTransient, InvalidInput, OutsideNetworks

Networks = tuple[str, ...]

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def checked_host(host: str, address: str) -> str:
    """`host` if it is a plain DNS name or IP address; else InvalidInput naming `address`.

    No user part, zone, percent-encoding, backslash or non-ASCII letter: each of those is
    read differently by different parsers, and a credential could follow the other reading.
    """
    if _HOST_NAME.match(host):  # a name, or an IPv4 address
        return host
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        if "%" not in bare:
            ip_address(bare)
            return bare
    except ValueError:
        pass
    raise InvalidInput(
        f"BMC address {address!r} names no plain host: give an IP address or an ASCII DNS "
        "name, without a user part, zone or escapes"
    )


def resolve(host: str) -> set[str]:
    """The addresses a BMC host name (or address) stands for."""
    try:
        answers = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise BmcTransient(f"BMC host {host!r} cannot be resolved: {error}") from None
    return {str(sockaddr[0]) for *_, sockaddr in answers}


def within(address: str, networks: Networks) -> bool:
    ip = ip_address(address.partition("%")[0])
    ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:10.0.0.5 is 10.0.0.5
    return any(ip in network for network in _parsed(networks))


def outside(addresses: Iterable[str], networks: Networks) -> list[str]:
    return sorted(a for a in addresses if not within(a, networks))


def check_peer(peer: str, networks: Networks) -> None:
    """Refuse a connection that reached `peer`, outside `networks`; before it sends a byte."""
    if not within(peer, networks):
        raise OutsideNetworks(
            f"refused to send a BMC credential to {peer}: outside the networks it may be "
            f"sent into ({', '.join(networks) or 'none'})",
            details={"outside": [peer]},
        )


def pinned(host: str, networks: Networks) -> str:
    """An address of `host`, once every address it resolves to is inside `networks`: a
    library given it connects where this looked, whatever DNS answers next."""
    addresses = resolve(host)
    for address in addresses:
        check_peer(address, networks)
    return min(addresses)


@lru_cache(maxsize=256)
def _parsed(networks: Networks) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(network) for network in networks)
