"""Admission gate: ``nexuscart._core.Gate.admit`` vs a pure-Python gate doing the same checks
(sold-out flags, per-user and per-IP GCRA buckets, per-sale in-flight cap), driven by the same
Python loop over the same 100k requests, first checked to make the same decisions."""

from __future__ import annotations

import collections
import json
import math
import random
import subprocess
from pathlib import Path
from typing import Any, Final, Protocol

import pytest

from nexuscart._core import ADMIT, BUSY, RATE_LIMITED, SOLD_OUT, Gate
from tests.bench.conftest import Figure, Figures, measure

pytestmark = pytest.mark.benchmark_only

N_REQUESTS: Final = 100_000
USER_RATE, USER_BURST = 2.0, 5
IP_RATE, IP_BURST = 50.0, 100
MAX_IN_FLIGHT: Final = 32
SOLD_OUT_SALE: Final = 3

Request = tuple[int, int, str, int]  # sale_id, user_id, ip, now_ns


class GateLike(Protocol):
    def admit(self, sale_id: int, user_id: int, ip: str, now_ns: int) -> tuple[int, int]: ...
    def release(self, sale_id: int) -> bool: ...
    def mark_sold_out(self, sale_id: int) -> bool: ...


class PyGate:
    """The Rust gate's rules (core_rs/src/gate), in plain Python dicts."""

    def __init__(
        self, user_rate: float, user_burst: int, ip_rate: float, ip_burst: int, max_in_flight: int
    ):
        # emission interval rounded up to whole ns, tolerance = burst * T (gcra.rs)
        self.user_t = math.ceil(1e9 / user_rate)
        self.user_tol = self.user_t * user_burst
        self.ip_t = math.ceil(1e9 / ip_rate)
        self.ip_tol = self.ip_t * ip_burst
        self.max_in_flight = max_in_flight
        self.sold_out: dict[int, bool] = {}
        self.users: dict[int, int] = {}  # key -> theoretical arrival time (ns)
        self.ips: dict[str, int] = {}
        self.in_flight: dict[int, int] = {}

    def admit(self, sale_id: int, user_id: int, ip: str, now_ns: int) -> tuple[int, int]:
        tat = self.users.get(user_id, now_ns)
        user_tat = (tat if tat > now_ns else now_ns) + self.user_t
        user_wait = user_tat - self.user_tol - now_ns
        tat = self.ips.get(ip, now_ns)
        ip_tat = (tat if tat > now_ns else now_ns) + self.ip_t
        ip_wait = ip_tat - self.ip_tol - now_ns
        if user_wait > 0 or ip_wait > 0:
            wait = user_wait if user_wait > ip_wait else ip_wait
            return RATE_LIMITED, -(-wait // 1_000_000)
        # every attempt that conforms is charged, whatever follows
        self.users[user_id] = user_tat
        self.ips[ip] = ip_tat
        if self.sold_out.get(sale_id):
            return SOLD_OUT, 0
        n = self.in_flight.get(sale_id, 0)
        if n >= self.max_in_flight:
            return BUSY, 0
        self.in_flight[sale_id] = n + 1
        return ADMIT, 0

    def release(self, sale_id: int) -> bool:
        n = self.in_flight.get(sale_id, 0)
        if n == 0:
            return False
        self.in_flight[sale_id] = n - 1
        return True

    def mark_sold_out(self, sale_id: int) -> bool:
        self.sold_out[sale_id] = True
        return True


class NullGate:
    """Admits everything: measures the driver loop alone."""

    def admit(self, sale_id: int, user_id: int, ip: str, now_ns: int) -> tuple[int, int]:
        return ADMIT, 0

    def release(self, sale_id: int) -> bool:
        return True

    def mark_sold_out(self, sale_id: int) -> bool:
        return True


def rust_gate() -> Gate:
    gate = Gate(USER_RATE, USER_BURST, IP_RATE, IP_BURST, MAX_IN_FLIGHT)
    gate.mark_sold_out(SOLD_OUT_SALE)
    return gate


def py_gate() -> PyGate:
    gate = PyGate(USER_RATE, USER_BURST, IP_RATE, IP_BURST, MAX_IN_FLIGHT)
    gate.mark_sold_out(SOLD_OUT_SALE)
    return gate


def workload(seed: int = 0x6A7E) -> tuple[list[Request], list[bool]]:
    """100k requests at 50k/s: 20% to a sold-out sale, 10% from 20 bots behind 3 IPs, the
    rest from 50k shoppers; a Redis call completes (release) after 60% of the steps, so the
    in-flight cap is reached at times."""
    rng = random.Random(seed)
    reqs: list[Request] = []
    for i in range(N_REQUESTS):
        sale = SOLD_OUT_SALE if rng.random() < 0.2 else rng.choice((1, 2))
        if rng.random() < 0.1:
            user = rng.randint(1, 20)
            ip = f"203.0.113.{user % 3}"
        else:
            user = rng.randint(1_000, 51_000)
            ip = f"10.{user % 250}.{user // 250 % 250}.7"
        reqs.append((sale, user, ip, 1_000_000_000 + i * 20_000))
    return reqs, [rng.random() < 0.6 for _ in range(N_REQUESTS)]


def drive(gate: GateLike, reqs: list[Request], release: list[bool]) -> list[tuple[int, int]]:
    admit = gate.admit
    give_back = gate.release
    pending: collections.deque[int] = collections.deque()
    out = []
    for (sale, user, ip, now), rel in zip(reqs, release, strict=True):
        decision = admit(sale, user, ip, now)
        out.append(decision)
        if decision[0] == ADMIT:
            pending.append(sale)
        if rel and pending:
            give_back(pending.popleft())
    return out


@pytest.fixture(scope="module")
def requests_() -> tuple[list[Request], list[bool]]:
    return workload()


def test_python_gate_decides_like_rust(requests_: tuple[list[Request], list[bool]]) -> None:
    reqs, rel = requests_
    ours = drive(rust_gate(), reqs, rel)
    theirs = drive(py_gate(), reqs, rel)
    first_diff = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), None
    )
    assert first_diff is None, (first_diff, reqs[first_diff or 0], ours[first_diff or 0])
    mix = collections.Counter(code for code, _ in ours)
    assert all(mix[c] > 100 for c in (ADMIT, SOLD_OUT, RATE_LIMITED, BUSY)), mix


def _bench(
    benchmark: Any,
    figures: Figures,
    key: str,
    label: str,
    make: Any,
    requests_: tuple[list[Request], list[bool]],
    baseline: str | None,
    rounds: int,
    overhead: str | None = None,
) -> None:
    reqs, rel = requests_
    secs = measure(benchmark, drive, rounds=rounds, setup=lambda: ((make(), reqs, rel), {}))
    ns = secs / N_REQUESTS * 1e9
    benchmark.extra_info["ns_per_decision"] = ns
    figures.add(
        key,
        Figure(
            label,
            ns,
            "ns/decision",
            higher_is_better=False,
            baseline=baseline,
            overhead=overhead,
        ),
    )


@pytest.mark.benchmark(group="gate: 100k admit decisions")
def test_bench_gate_rust(
    benchmark: Any, figures: Figures, requests_: tuple[list[Request], list[bool]]
) -> None:
    label = "gate: Rust Gate.admit (+release), Python loop"
    _bench(
        benchmark, figures, "gate.rust", label, rust_gate, requests_, "gate.python", 10, "gate.null"
    )


@pytest.mark.benchmark(group="gate: 100k admit decisions")
def test_bench_gate_pure_python(
    benchmark: Any, figures: Figures, requests_: tuple[list[Request], list[bool]]
) -> None:
    label = "gate: pure-Python GCRA gate, same loop"
    _bench(benchmark, figures, "gate.python", label, py_gate, requests_, None, 5)


@pytest.mark.benchmark(group="gate: 100k admit decisions")
def test_bench_gate_loop_overhead(
    benchmark: Any, figures: Figures, requests_: tuple[list[Request], list[bool]]
) -> None:
    label = "gate: the driver loop alone (admit-all stub)"
    _bench(benchmark, figures, "gate.null", label, NullGate, requests_, None, 10)


@pytest.mark.benchmark(group="gate: 100k admit decisions")
def test_bench_gate_decision_alone_in_rust(
    figures: Figures, requests_: tuple[list[Request], list[bool]], tmp_path: Path
) -> None:
    """The same requests replayed by a Rust loop (core_rs/examples/gate_decision.rs): the
    decision without the Python call around it, which is what a Python caller pays on top."""
    reqs, rel = requests_
    path = tmp_path / "requests.txt"
    with path.open("w") as f:
        f.write(f"{USER_RATE} {USER_BURST} {IP_RATE} {IP_BURST} {MAX_IN_FLIGHT} {SOLD_OUT_SALE}\n")
        for (sale, user, ip, now), r in zip(reqs, rel, strict=True):
            f.write(f"{sale} {user} {ip} {now} {int(r)}\n")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        ["cargo", "run", "-q", "--release", "--example", "gate_decision", "--", str(path), "10"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    res = json.loads(out)
    ours = drive(py_gate(), reqs, rel)
    tally = collections.Counter(code for code, _ in ours)
    assert res["tally"] == [tally[c] for c in (ADMIT, SOLD_OUT, RATE_LIMITED, BUSY)]
    assert res["retry_ms_sum"] == sum(ms for _, ms in ours)
    python, loop = figures.get("gate.python"), figures.get("gate.null")
    note = ""
    if python is not None and loop is not None:
        note = f"{(python.value - loop.value) / res['ns_per_decision']:,.0f}x the Python gate net"
    figures.add(
        "gate.rust.alone",
        Figure(
            "gate: decision alone, Rust loop, same requests",
            res["ns_per_decision"],
            "ns/decision",
            higher_is_better=False,
            note=note,
        ),
    )
