"""Per-IP limits key on the real client, also behind a load balancer, and never on an address
the client could choose itself."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexuscart import config
from nexuscart.web import ClientAddress

LB = ClientAddress(["10.0.0.0/8", "fd00::/8"])


def test_without_trusted_proxies_the_tcp_peer_is_the_client() -> None:
    assert ClientAddress()("203.0.113.9", "198.51.100.1") == "203.0.113.9"


def test_a_trusted_proxy_forwards_the_client_address() -> None:
    assert LB("10.1.2.3", "198.51.100.7") == "198.51.100.7"


def test_a_spoofed_entry_left_of_the_real_client_is_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; the load balancer appended the real peer.
    assert LB("10.1.2.3", "1.2.3.4, 198.51.100.7") == "198.51.100.7"


def test_chains_of_trusted_proxies_are_walked_from_the_right() -> None:
    assert LB("10.1.2.3", "198.51.100.7, 10.9.9.9, fd00::1") == "198.51.100.7"


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    assert LB("203.0.113.9", "198.51.100.7") == "203.0.113.9"


@pytest.mark.parametrize("header", [None, "", " , ", "10.0.0.1, 10.0.0.2"])
def test_nothing_untrusted_forwarded_falls_back_to_the_peer(header: str | None) -> None:
    assert LB("10.1.2.3", header) == "10.1.2.3"


def test_garbage_in_the_header_is_a_distinct_untrusted_client() -> None:
    assert LB("10.1.2.3", "not-an-ip") == "not-an-ip"


def test_a_malformed_trusted_proxies_setting_fails_at_startup() -> None:
    env = {
        "REDIS_URL": "redis://x",
        "PG_DSN": "postgresql://x",
        "KAFKA_BOOTSTRAP": "x:1",
        **config.dev_defaults(),
        "TRUSTED_PROXIES": "10.0.0.0/8, 10.0.0.300/32",
    }
    with pytest.raises(config.ConfigError, match="TRUSTED_PROXIES"):
        config.load(env)
    env["TRUSTED_PROXIES"] = "10.0.0.0/8, fd00::/8"
    assert config.load(env).edge.trusted_networks() == ["10.0.0.0/8", "fd00::/8"]


async def test_the_app_hands_handlers_the_resolved_client() -> None:
    from types import SimpleNamespace

    from nexuscart.web import App, Request, Response, Route

    async def whoami(req: Request) -> Response:
        return Response(200, req.client_ip.encode(), [])

    app = App([Route("GET", "/ip", whoami, "who am I")], max_body_bytes=1024, client_address=LB)
    sent: list[bytes] = []
    proto = SimpleNamespace(response_bytes=lambda status, headers, body: sent.append(body))
    for peer, xff in (("10.1.2.3:5000", "198.51.100.7"), ("203.0.113.9:5000", "198.51.100.7")):
        scope = SimpleNamespace(
            method="GET",
            path="/ip",
            query_string="",
            client=peer,
            headers={"x-forwarded-for": xff},
        )
        await app.__rsgi__(scope, proto)
    assert sent == [b"198.51.100.7", b"203.0.113.9"]


@given(
    st.ip_addresses(v=4),
    st.lists(st.tuples(st.ip_addresses(v=4), st.integers(0, 32)), min_size=1, max_size=3),
)
def test_the_integer_ipv4_check_agrees_with_ipaddress(
    addr: ipaddress.IPv4Address, nets: list[tuple[ipaddress.IPv4Address, int]]
) -> None:
    cidrs = [f"{a}/{p}" for a, p in nets]
    expected = any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)
    assert ClientAddress(cidrs).is_trusted(str(addr)) is expected


def test_ipv6_and_v4_mapped_addresses_are_checked_too() -> None:
    ca = ClientAddress(["10.0.0.0/8", "fd00::/8"])
    assert ca.is_trusted("fd00::1")
    assert not ca.is_trusted("fe80::1")
    assert ca.is_trusted("::ffff:10.1.2.3")
    assert not ca.is_trusted("::ffff:11.1.2.3")
    assert not ca.is_trusted("not-an-address")
    assert not ca.is_trusted("10.1")  # inet_aton would read this as 10.0.0.1
