"""Access-token verification per request: ``TokenVerifier.principal`` on a cached token (a
buyer retrying in a storm) and on a fresh one (first request with a token: HMAC-SHA256 and
two small JSON documents), each with no revocations and with 10k revoked users (one hash
lookup more), and the edge's whole customer guard (header lookup, principal, role check).
The issue's budget: verification adds at most 2 µs to a request. Figures are ns per call,
net of the driver loop (the same loop calling a C builtin), reported, never asserted."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Final, cast

import pytest

from edge import access
from nexuscart import auth
from nexuscart._core import TokenVerifier
from nexuscart.web import HeadersLike, Request
from tests.bench.conftest import Figure, Figures, measure

pytestmark = pytest.mark.benchmark_only

SECRET: Final = "bench-secret-" + "k" * 40
N: Final = 20_000
REVOKED: Final = 10_000
NOW: Final = time.time()


def _tokens(n: int) -> list[str]:
    return [
        "Bearer " + auth.issue(SECRET, 1 + i, now=NOW - 60, roles=("customer",)) for i in range(n)
    ]


def _verifier(revocations: int) -> TokenVerifier:
    v = TokenVerifier(SECRET, "nexuscart", cache_size=4 * N)
    # users 1..revocations revoked before their tokens were issued: every lookup finds an
    # entry and compares (the worst case of a non-empty map), and the token is accepted
    for user in range(1, revocations + 1):
        v.revoke_before(user, NOW - 3600)
    return v


def _loop(call: Callable[[Any], object], items: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for item in items:
            call(item)

    return run


def _loop_ns(items: list[Any]) -> float:
    """The driver loop's own cost per call (a C builtin instead of the target)."""
    run = _loop(id, items)
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(items) * 1e9


def _net_ns(benchmark: Any, run: Callable[[], None], items: list[Any], setup: Any = None) -> float:
    """ns per call of the target, net of the driver loop."""
    total = measure(benchmark, run, rounds=15, setup=setup) / len(items) * 1e9
    return total - _loop_ns(items)


def _figure(figures: Figures, key: str, label: str, ns: float, base: str | None = None) -> None:
    figures.add(key, Figure(label, ns, "ns/call", higher_is_better=False, baseline=base))


@pytest.mark.parametrize("revocations", [0, REVOKED])
def test_bench_principal_cached(benchmark: Any, figures: Figures, revocations: int) -> None:
    v = _verifier(revocations)
    items = _tokens(N)
    for a in items:
        v.principal(a)
    assert v.cache_len() == N
    assert v.principal(items[0]) == (1, auth.ROLE_BITS["customer"])
    ns = _net_ns(benchmark, _loop(v.principal, items), items)
    label = f"principal(), cached token, {revocations:,} revoked users"
    base = "token.cached.0" if revocations else None
    _figure(figures, f"token.cached.{revocations}", label, ns, base)


@pytest.mark.parametrize("revocations", [0, REVOKED])
def test_bench_principal_fresh(benchmark: Any, figures: Figures, revocations: int) -> None:
    v = _verifier(revocations)
    items = _tokens(N)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        v.clear_cache()  # untimed: every timed call verifies its token
        return (), {}

    ns = _net_ns(benchmark, _loop(v.principal, items), items, setup)
    assert v.cache_len() == N
    label = f"principal(), fresh token, {revocations:,} revoked users"
    base = "token.fresh.0" if revocations else None
    _figure(figures, f"token.fresh.{revocations}", label, ns, base)


def test_bench_customer_guard_cached(benchmark: Any, figures: Figures) -> None:
    v = _verifier(REVOKED)
    guard = access.guards(v)["customer"]
    reqs = [
        Request(
            "POST",
            "/flash-sales/1/purchase",
            "",
            cast(HeadersLike, {"authorization": a}),
            b"",
            "10.0.0.1",
            {},
        )
        for a in _tokens(N)
    ]
    for r in reqs:
        guard(r)
    ns = _net_ns(benchmark, _loop(guard, reqs), reqs)
    label = f"edge customer guard, cached token, {REVOKED:,} revoked users"
    _figure(figures, "token.guard", label, ns)
