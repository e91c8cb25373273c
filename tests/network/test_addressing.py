"""Address arithmetic: spelling, host spans, offsets; no database."""

import re
from ipaddress import ip_address, ip_network

import pytest

from metalyard.network.addressing import (
    OFFSET_LIMIT,
    Span,
    bounds_key,
    free_segments,
    host_span,
    normal_address,
    normal_network,
    offset_of,
)


def test_addresses_and_prefixes_have_one_spelling():
    assert normal_address(" 2001:DB8:0::0005 ") == "2001:db8::5"
    assert normal_network("2001:DB8:0::/64") == "2001:db8::/64"
    assert normal_network("10.1.0.0/16") == "10.1.0.0/16"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10.0.0.5/24", "host bits set; did you mean 10.0.0.0/24?"),
        ("10.0.0.0", "has no prefix length"),
        ("10.0.0.0/33", "is not a CIDR prefix"),
        ("banana/8", "is not a CIDR prefix"),
        ("fe80::/64%eth0", "zone"),
    ],
)
def test_bad_prefixes_say_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        normal_network(text)


def test_bad_addresses_say_how_to_write_one():
    with pytest.raises(ValueError, match=re.escape("write it like 10.0.0.5")):
        normal_address("10.0.0.256")
    with pytest.raises(ValueError, match="zone"):
        normal_address("fe80::1%eth0")


@pytest.mark.parametrize(
    ("cidr", "first", "last"),
    [
        ("10.0.0.0/24", 1, 254),
        ("10.0.0.0/31", 0, 1),
        ("10.0.0.7/32", 0, 0),
        ("2001:db8::/120", 1, 255),
        ("2001:db8::/127", 0, 1),
        ("2001:db8::/64", 1, OFFSET_LIMIT),
    ],
)
def test_host_spans_follow_hosts(cidr, first, last):
    span = host_span(ip_network(cidr))
    assert (span.first, span.last) == (first, last)


def test_offsets_and_bounds():
    network = ip_network("10.1.0.0/16")
    assert offset_of(network, ip_address("10.1.2.3")) == 2 * 256 + 3
    start, end = bounds_key(network)
    assert len(start) == len(end) == 16 and start < end
    assert bounds_key(ip_network("10.2.0.0/16"))[0] > end


def test_free_segments_are_what_reserved_ranges_and_the_gateway_leave():
    span = Span(1, 254)
    assert free_segments(span, []) == [Span(1, 254)]
    used = [Span(200, 300), Span(1, 10), Span(5, 5), Span(100, 100)]
    assert free_segments(span, used) == [Span(11, 99), Span(101, 199)]
    assert free_segments(span, [Span(0, 254)]) == []
    assert free_segments(Span(0, 0), [Span(1, 9)]) == [Span(0, 0)]
