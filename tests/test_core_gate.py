"""The Rust admission gate (``nexuscart._core.Gate``): pure logic, no servers.

Time is injected (``now_ns``) everywhere except in the one test of the default clock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# isort: split
from nexuscart import _core
from nexuscart._core import (
    ADMIT,
    BUSY,
    RATE_LIMITED,
    SOLD_OUT,
    Gate,
    InvalidArgument,
    NexusCartError,
    OutOfRange,
)

MS = 1_000_000
SEC = 1_000 * MS
U64_MAX = 2**64 - 1


def make_gate(
    user: tuple[float, int] = (1.0, 2),
    ip: tuple[float, int] = (10.0, 5),
    max_in_flight: int = 100,
    **kwargs: int,
) -> Gate:
    return Gate(user[0], user[1], ip[0], ip[1], max_in_flight, **kwargs)


def test_codes_are_stable() -> None:
    assert (ADMIT, SOLD_OUT, RATE_LIMITED, BUSY) == (0, 1, 2, 3)
    assert _core.ADMIT == 0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((0.0, 1, 1.0, 1, 1), InvalidArgument),
        ((-1.0, 1, 1.0, 1, 1), InvalidArgument),
        ((math.nan, 1, 1.0, 1, 1), InvalidArgument),
        ((math.inf, 1, 1.0, 1, 1), InvalidArgument),
        ((1.0, 1, 2e9, 1, 1), InvalidArgument),
        ((1.0, 0, 1.0, 1, 1), OutOfRange),
        ((1.0, -1, 1.0, 1, 1), OutOfRange),
        ((1.0, 2**32, 1.0, 1, 1), OutOfRange),
        ((1.0, 1, 1.0, 0, 1), OutOfRange),
        ((1.0, 1, 1.0, 1, 0), OutOfRange),
        ((1.0, 1, 1.0, 1, -3), OutOfRange),
    ],
)
def test_bad_config_raises_the_hierarchy(
    args: tuple[float, int, float, int, int], error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        Gate(*args)
    assert isinstance(info.value, NexusCartError)
    assert isinstance(info.value, ValueError)


def test_out_of_range_ids_raise_out_of_range_not_overflow() -> None:
    gate = make_gate()
    for bad in (-1, 2**64):
        with pytest.raises(OutOfRange):
            gate.admit(bad, 1, "1.2.3.4", 0)
        with pytest.raises(OutOfRange):
            gate.admit(1, bad, "1.2.3.4", 0)
        with pytest.raises(OutOfRange):
            gate.release(bad)
    assert gate.admit(U64_MAX, U64_MAX, "::1", U64_MAX) == (ADMIT, 0)


def test_wrong_types_raise_type_error() -> None:
    gate = make_gate()
    with pytest.raises(TypeError):
        gate.admit("1", 1, "ip", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        gate.admit(1, 1, b"ip", 0)  # type: ignore[arg-type]


def test_lone_surrogate_ip_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        make_gate().admit(1, 1, "\ud800", 0)


def test_retries_of_a_sold_out_sale_are_rate_limited() -> None:
    # Regression: sold out was answered before the buckets, so retries were never limited.
    gate = make_gate(user=(1.0, 2))
    assert gate.mark_sold_out(1) is True
    assert gate.is_sold_out(1)
    assert gate.admit(1, 5, "1.1.1.1", 0) == (SOLD_OUT, 0)
    assert gate.check(1, 5, "1.1.1.1", 0) == (SOLD_OUT, 0)
    assert gate.check(1, 5, "1.1.1.1", 0) == (RATE_LIMITED, 1000)
    assert gate.in_flight(1) == 0
    assert gate.admit(2, 6, "1.1.1.1", 0) == (ADMIT, 0)


def test_check_takes_no_slot_and_enter_takes_one() -> None:
    # A purchase holds its in-flight slot only around the Redis call, not while its body
    # arrives: check() before the body, enter() after it.
    gate = make_gate(max_in_flight=1)
    assert gate.check(1, 1, "a", 0) == (ADMIT, 0)
    assert gate.check(1, 2, "b", 0) == (ADMIT, 0)
    assert gate.in_flight(1) == 0
    assert gate.enter(1) == ADMIT
    assert gate.enter(1) == BUSY
    assert gate.release(1) is True
    gate.mark_sold_out(1)
    assert gate.enter(1) == SOLD_OUT
    assert gate.in_flight(1) == 0


def test_user_bucket_then_ip_bucket() -> None:
    gate = make_gate(user=(1.0, 2), ip=(1.0, 3))
    now = 10 * SEC
    assert gate.admit(1, 7, "a", now) == (ADMIT, 0)
    assert gate.admit(1, 7, "a", now) == (ADMIT, 0)
    assert gate.admit(1, 7, "a", now) == (RATE_LIMITED, 1000)
    assert gate.admit(1, 7, "a", now + 250 * MS) == (RATE_LIMITED, 750)
    # A second user on the same IP takes the IP's last token.
    assert gate.admit(1, 8, "a", now) == (ADMIT, 0)
    assert gate.admit(1, 9, "a", now) == (RATE_LIMITED, 1000)
    assert gate.admit(1, 7, "a", now + SEC) == (ADMIT, 0)


def test_retry_after_is_rounded_up_to_whole_ms() -> None:
    gate = make_gate(user=(1.0, 1))
    assert gate.admit(1, 1, "a", 0)[0] == ADMIT
    assert gate.admit(1, 1, "a", SEC - 1) == (RATE_LIMITED, 1)
    assert gate.admit(1, 1, "a", SEC - MS - 1) == (RATE_LIMITED, 2)


def test_both_limited_reports_the_longer_wait() -> None:
    gate = make_gate(user=(1.0, 1), ip=(0.5, 1))
    assert gate.admit(1, 1, "x", 0) == (ADMIT, 0)
    assert gate.admit(1, 1, "x", 0) == (RATE_LIMITED, 2000)


def test_rejection_by_one_bucket_does_not_charge_the_other() -> None:
    gate = make_gate(user=(1.0, 1), ip=(1.0, 1))
    assert gate.admit(1, 1, "ip-a", SEC)[0] == ADMIT
    # user 1 is empty: the untouched IP ip-b must keep its token
    assert gate.admit(1, 1, "ip-b", SEC)[0] == RATE_LIMITED
    assert gate.admit(1, 2, "ip-b", SEC)[0] == ADMIT
    # ip-a is empty: the untouched user 3 must keep their token
    assert gate.admit(1, 3, "ip-a", SEC)[0] == RATE_LIMITED
    assert gate.admit(1, 3, "ip-c", SEC)[0] == ADMIT


def test_busy_is_charged_and_release_frees_the_slot() -> None:
    gate = make_gate(user=(1.0, 2), ip=(1.0, 2), max_in_flight=1)
    assert gate.max_in_flight == 1
    assert gate.admit(1, 1, "a", 0) == (ADMIT, 0)
    assert gate.in_flight(1) == 1
    assert gate.admit(1, 2, "b", 0) == (BUSY, 0)
    assert gate.tracked_keys() == (2, 2)  # a busy attempt is an attempt
    assert gate.release(1) is True
    assert gate.release(1) is False
    assert gate.in_flight(1) == 0
    assert gate.admit(1, 2, "b", 0) == (ADMIT, 0)
    assert gate.admit(2, 3, "c", 0) == (ADMIT, 0)  # the cap is per sale


def test_release_without_admit_never_goes_negative() -> None:
    gate = make_gate()
    for _ in range(3):
        assert gate.release(42) is False
    assert gate.in_flight(42) == 0


def test_reopen_starts_a_new_epoch_and_ignores_stale_marks() -> None:
    gate = make_gate()
    seen = gate.epoch(9)  # read before the Redis call
    assert seen == 0
    new_epoch = gate.reopen(9)  # stock came back meanwhile
    assert new_epoch > seen
    assert gate.mark_sold_out(9, seen) is False  # stale answer must not close the sale
    assert not gate.is_sold_out(9)
    assert gate.mark_sold_out(9, new_epoch) is True
    assert gate.sold_out_sales() == [9]
    assert gate.reopen(9) > new_epoch
    assert gate.sold_out_sales() == []
    assert gate.admit(9, 1, "a", 0) == (ADMIT, 0)


def test_sold_out_sales_are_sorted() -> None:
    gate = make_gate()
    for sale in (30, 2, 2**63, 7):
        gate.mark_sold_out(sale)
    gate.reopen(7)
    assert gate.sold_out_sales() == [2, 30, 2**63]


def test_memory_is_bounded_by_max_keys() -> None:
    gate = make_gate(user=(1 / 3600, 1), ip=(1 / 3600, 1), max_keys=1024)
    for i in range(20_000):
        gate.admit(1, i, f"10.0.{i // 256}.{i % 256}", i)
        gate.release(1)
    users, ips = gate.tracked_keys()
    assert 0 < users <= 1024
    assert 0 < ips <= 1024


def test_full_buckets_are_swept() -> None:
    gate = make_gate(user=(1.0, 1), ip=(1.0, 1))
    for i in range(1000):
        gate.admit(1, i, str(i), i * MS)
        gate.release(1)
    assert gate.tracked_keys() == (1000, 1000)
    assert gate.sweep(2000 * MS) == 2000
    assert gate.tracked_keys() == (0, 0)


def test_default_clock() -> None:
    gate = make_gate(user=(1000.0, 10))
    assert gate.admit(1, 1, "a") == (ADMIT, 0)
    assert gate.sweep() >= 0
    assert repr(gate) == "<Gate max_in_flight=100>"


def test_threads_share_one_gate_safely() -> None:
    gate = make_gate(user=(1.0, 50), ip=(1000.0, 1000), max_in_flight=10_000)
    admitted = []
    lock = threading.Lock()

    def hammer(n: int) -> None:
        mine = sum(gate.admit(1, 42, f"10.0.0.{n}", SEC)[0] == ADMIT for _ in range(500))
        with lock:
            admitted.append(mine)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 50
    assert gate.in_flight(1) == 50


# -- properties ------------------------------------------------------------------------


@dataclass
class ReferenceGcra:
    """Independent model of the documented arithmetic: T = ceil(1e9 / rate) ns."""

    rate: float
    burst: int
    tat: dict[int, int] = field(default_factory=dict)

    @property
    def emission(self) -> int:
        return math.ceil(1e9 / self.rate)

    def check(self, key: int, now: int) -> tuple[bool, int, int]:
        base = max(self.tat.get(key, now), now)
        new_tat = base + self.emission
        allowed_at = max(new_tat - self.burst * self.emission, 0)
        return allowed_at <= now, new_tat, max(allowed_at - now, 0)


requests = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400 * MS),  # time step
        st.integers(min_value=0, max_value=3),  # user
        st.integers(min_value=0, max_value=2),  # ip
    ),
    min_size=1,
    max_size=120,
)
rates = st.sampled_from([0.5, 1.0, 3.0, 7.5, 20.0])
bursts = st.integers(min_value=1, max_value=5)


@settings(max_examples=150, deadline=None)
@given(requests, rates, bursts, rates, bursts)
def test_decisions_match_reference_model(
    reqs: list[tuple[int, int, int]], u_rate: float, u_burst: int, i_rate: float, i_burst: int
) -> None:
    gate = Gate(u_rate, u_burst, i_rate, i_burst, 1_000_000)
    users, ips = ReferenceGcra(u_rate, u_burst), ReferenceGcra(i_rate, i_burst)
    now = SEC
    for step, user, ip in reqs:
        now += step
        code, retry_ms = gate.admit(1, user, f"ip{ip}", now)
        u_ok, u_tat, u_wait = users.check(user, now)
        i_ok, i_tat, i_wait = ips.check(ip, now)
        if u_ok and i_ok:
            assert (code, retry_ms) == (ADMIT, 0)
            users.tat[user], ips.tat[ip] = u_tat, i_tat
        else:
            waits = [w for ok, w in ((u_ok, u_wait), (i_ok, i_wait)) if not ok]
            assert (code, retry_ms) == (RATE_LIMITED, -(-max(waits) // MS))


@settings(max_examples=150, deadline=None)
@given(requests, rates, bursts)
def test_admitted_in_any_window_is_at_most_burst_plus_rate_times_elapsed(
    reqs: list[tuple[int, int, int]], rate: float, burst: int
) -> None:
    gate = Gate(rate, burst, 1e6, 1_000_000, 1_000_000)
    now = SEC
    admitted: dict[int, list[int]] = {}
    for step, user, _ in reqs:
        now += step
        if gate.admit(1, user, "same-ip", now)[0] == ADMIT:
            admitted.setdefault(user, []).append(now)
    for times in admitted.values():
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                count = j - i + 1
                elapsed_s = (times[j] - start) / SEC
                assert count <= burst + rate * elapsed_s + 1e-9


ops = st.lists(
    st.tuples(
        st.sampled_from(["admit", "release", "mark", "reopen"]),
        st.integers(min_value=0, max_value=2),  # sale
        st.integers(min_value=0, max_value=5),  # user
    ),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(min_value=1, max_value=4))
def test_in_flight_is_never_negative_nor_above_the_cap(
    seq: list[tuple[str, int, int]], cap: int
) -> None:
    gate = Gate(1e6, 1_000_000, 1e6, 1_000_000, cap)
    model = {0: 0, 1: 0, 2: 0}
    sold_out = {0: False, 1: False, 2: False}
    for op, sale, user in seq:
        if op == "admit":
            code, _ = gate.admit(sale, user, "ip", SEC)
            if sold_out[sale]:
                assert code == SOLD_OUT
            elif model[sale] >= cap:
                assert code == BUSY
            else:
                assert code == ADMIT
                model[sale] += 1
        elif op == "release":
            assert gate.release(sale) is (model[sale] > 0)
            model[sale] = max(model[sale] - 1, 0)
        elif op == "mark":
            gate.mark_sold_out(sale)
            sold_out[sale] = True
        else:
            gate.reopen(sale)
            sold_out[sale] = False
        for s in model:
            assert 0 <= gate.in_flight(s) == model[s] <= cap
        assert gate.sold_out_sales() == sorted(s for s, v in sold_out.items() if v)


@settings(max_examples=100, deadline=None)
@given(requests, bursts, st.integers(min_value=1, max_value=3))
def test_rejected_requests_have_no_side_effects(
    reqs: list[tuple[int, int, int]], burst: int, cap: int
) -> None:
    """A gate fed only the requests another gate admitted admits all of them."""
    full = Gate(2.0, burst, 3.0, burst + 1, cap)
    replay = Gate(2.0, burst, 3.0, burst + 1, cap)
    now = SEC
    for n, (step, user, ip) in enumerate(reqs):
        now += step
        if n % 4 == 3:  # now and then a request finishes
            assert full.release(1) is replay.release(1)
        if full.admit(1, user, f"ip{ip}", now)[0] == ADMIT:
            assert replay.admit(1, user, f"ip{ip}", now)[0] == ADMIT
        assert full.in_flight(1) == replay.in_flight(1)
