"""Metrics on the edge's hot path: what ``App`` does after each response (count the request by
route and status, observe its latency), per request (ADR 0006):

- ``nexuscart.web.Metrics.observe``, the edge's own counters (the baseline);
- prometheus_client in multiprocess mode (the mmap'd value class ``PROMETHEUS_MULTIPROC_DIR``
  selects), label children resolved once per (route, status), as the edge would hold them;
- the same with ``.labels(...)`` resolved on every request (what the library's docs show);
- the same with the pid cached (no ``getpid`` per increment), to see what that call costs;
- prometheus_client's default in-memory value class (one process only), for scale.

Each round drives the same 10,000 (route, status, seconds) observations through one Python
loop; the loop alone is measured too and reported as the overhead to subtract.

    NEXUSCART_BENCH=1 .venv/bin/python -m pytest tests/bench/test_bench_metrics.py \\
        --benchmark-enable -q -p no:cacheprovider
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, values

from nexuscart.web import Metrics
from tests.bench.conftest import Figure, Figures, measure

pytestmark = pytest.mark.benchmark_only

N_OBS: Final = 10_000
ROUNDS: Final = 40
BUCKETS: Final = Metrics.BUCKETS
PURCHASE: Final = "/flash-sales/{sale_id}/purchase"

Obs = tuple[str, int, float]


@pytest.fixture(scope="module")
def observations() -> list[Obs]:
    """A storm's mix: mostly admitted purchases under a millisecond, some refusals, a tail."""
    rng = random.Random(0x5EED)
    out: list[Obs] = []
    for _ in range(N_OBS):
        status = rng.choices((202, 409, 429, 200), weights=(70, 15, 10, 5))[0]
        route = PURCHASE if status != 200 else "/flash-sales/{sale_id}"
        out.append((route, status, rng.lognormvariate(-7.6, 0.9)))  # median ~0.5 ms
    return out


@pytest.fixture
def multiprocess(tmp_path: Path) -> Iterator[Path]:
    """prometheus_client's multiprocess value class, chosen as its import does (from the
    environment), for this test only: the value class is process-wide."""
    saved_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    saved_class = values.ValueClass
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    assert values.ValueClass._multiprocess
    try:
        yield tmp_path
    finally:
        values.ValueClass = saved_class
        if saved_env is None:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved_env


def _prometheus() -> tuple[Counter, Histogram]:
    registry = CollectorRegistry()
    requests = Counter(
        "nexuscart_http_requests", "Requests", ("route", "status"), registry=registry
    )
    latency = Histogram(
        "nexuscart_http_request_duration_seconds",
        "Latency",
        ("route",),
        buckets=BUCKETS,
        registry=registry,
    )
    return requests, latency


def _bound_observer() -> Callable[[str, int, float], None]:
    """Fresh metrics observed through label children resolved once per (route, status) and
    kept in a dict, as the edge would hold them."""
    requests, latency = _prometheus()
    bound: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(route: str, status: int, seconds: float) -> None:
        children = bound.get((route, status))
        if children is None:
            children = bound[(route, status)] = (
                requests.labels(route, str(status)),
                latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    return observe


def _loop(observe: Callable[[str, int, float], None]) -> Callable[[list[Obs]], None]:
    def run(obs: list[Obs]) -> None:
        for route, status, seconds in obs:
            observe(route, status, seconds)

    return run


def _record(benchmark: Any, figures: Figures, key: str, label: str, secs: float) -> None:
    """Median per request as the figure; the fastest round beside it, as a shared machine's
    other work only ever adds time."""
    ns = secs / N_OBS * 1e9
    note = ""
    if not getattr(benchmark, "disabled", False):
        note = f"fastest round {benchmark.stats.stats.min / N_OBS * 1e9:,.0f} ns"
    figures.add(
        key,
        Figure(
            label,
            ns,
            "ns/request",
            higher_is_better=False,
            baseline=None if key in ("metrics.nexuscart", "metrics.loop") else "metrics.nexuscart",
            overhead="metrics.loop" if key != "metrics.loop" else None,
            note=note,
        ),
    )
    benchmark.extra_info["ns_per_request"] = ns


def _bench(benchmark: Any, observe: Callable[[str, int, float], None], obs: list[Obs]) -> float:
    return measure(benchmark, _loop(observe), rounds=ROUNDS, setup=lambda: ((obs,), {}))


@pytest.mark.benchmark(group="metrics: per request")
def test_bench_metrics_loop_only(benchmark: Any, observations: list[Obs], figures: Figures) -> None:
    def nothing(route: str, status: int, seconds: float) -> None:
        pass

    secs = _bench(benchmark, nothing, observations)
    _record(benchmark, figures, "metrics.loop", "metrics: the driving loop alone", secs)


@pytest.mark.benchmark(group="metrics: per request")
def test_bench_metrics_nexuscart(benchmark: Any, observations: list[Obs], figures: Figures) -> None:
    secs = _bench(benchmark, Metrics().observe, observations)
    _record(benchmark, figures, "metrics.nexuscart", "metrics: nexuscart.web.Metrics", secs)


@pytest.mark.benchmark(group="metrics: per request")
def test_bench_metrics_prometheus_multiprocess_bound(
    benchmark: Any, observations: list[Obs], figures: Figures, multiprocess: Path
) -> None:
    secs = _bench(benchmark, _bound_observer(), observations)
    _record(
        benchmark,
        figures,
        "metrics.prom_mp_bound",
        "metrics: prometheus_client multiprocess, bound children",
        secs,
    )


@pytest.mark.benchmark(group="metrics: per request")
def test_bench_metrics_prometheus_multiprocess_labels(
    benchmark: Any, observations: list[Obs], figures: Figures, multiprocess: Path
) -> None:
    requests, latency = _prometheus()

    def observe(route: str, status: int, seconds: float) -> None:
        requests.labels(route, str(status)).inc()
        latency.labels(route).observe(seconds)

    secs = _bench(benchmark, observe, observations)
    _record(
        benchmark,
        figures,
        "metrics.prom_mp_labels",
        "metrics: prometheus_client multiprocess, .labels() per call",
        secs,
    )


@pytest.mark.benchmark(group="metrics: per request")
def test_bench_metrics_prometheus_single_process_bound(
    benchmark: Any, observations: list[Obs], figures: Figures
) -> None:
    """For scale: the default (in-memory, one process) value class."""
    saved = values.ValueClass
    values.ValueClass = values.MutexValue
    try:
        secs = _bench(benchmark, _bound_observer(), observations)
    finally:
        values.ValueClass = saved
    _record(
        benchmark,
        figures,
        "metrics.prom_single_bound",
        "metrics: prometheus_client one process, bound children",
        secs,
    )


@pytest.mark.benchmark(group="metrics: per request")
def test_bench_metrics_prometheus_multiprocess_cached_pid(
    benchmark: Any, observations: list[Obs], figures: Figures, multiprocess: Path
) -> None:
    """Where the multiprocess cost goes: every increment asks the kernel for the pid (to notice a
    fork); a cached pid (the library's ``process_identifier`` hook) skips that system call."""
    pid = [os.getpid()]
    values.ValueClass = values.MultiProcessValue(lambda: pid[0])  # type: ignore[no-untyped-call]
    secs = _bench(benchmark, _bound_observer(), observations)
    _record(
        benchmark,
        figures,
        "metrics.prom_mp_cached",
        "metrics: prometheus_client multiprocess, bound, pid cached",
        secs,
    )
