"""Benchmarks are opt-in: skipped unless ``--benchmark-enable`` is given or ``NEXUSCART_BENCH=1``.

    NEXUSCART_BENCH=1 .venv/bin/python -m pytest tests/bench -q --benchmark-enable \\
        -p no:cacheprovider

Each benchmark also records its headline figure (keys/s, ns/decision, orders/s) with the
``figures`` fixture; they are printed together, with the ratios to their baselines, at the
end of the run ("NexusCart benchmark figures"). Figures are reported, never asserted
(no timed asserts in tests).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parent


def bench_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_enable", default=False)) or (
        os.environ.get("NEXUSCART_BENCH") == "1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if bench_enabled(config):
        return
    skip = pytest.mark.skip(reason="benchmark: run with --benchmark-enable or NEXUSCART_BENCH=1")
    for item in items:
        if BENCH_DIR in item.path.parents or item.get_closest_marker("benchmark_only"):
            item.add_marker(skip)


@dataclass(frozen=True)
class Figure:
    label: str
    value: float
    unit: str
    higher_is_better: bool = True
    baseline: str | None = None  # key of the figure this one is compared with
    overhead: str | None = None  # key of a cost in both (a driver loop): also compare net of it
    note: str = ""


_FIGURES = pytest.StashKey[dict[str, Figure]]()


class Figures:
    """Headline numbers of the run, printed in the terminal summary."""

    def __init__(self, config: pytest.Config):
        self._store = config.stash.setdefault(_FIGURES, {})

    def add(self, key: str, figure: Figure) -> None:
        self._store[key] = figure

    def get(self, key: str) -> Figure | None:
        return self._store.get(key)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.config)


def measure(
    benchmark: Any,
    target: Callable[..., object],
    *,
    rounds: int,
    setup: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]] | None = None,
    warmup_rounds: int = 1,
) -> float:
    """Median seconds per round of ``target``; ``setup`` (untimed) makes each round's args.

    Uses pytest-benchmark when it is enabled; under ``NEXUSCART_BENCH=1`` without
    ``--benchmark-enable`` the fixture only runs the target once, so we time it ourselves.
    """
    if not getattr(benchmark, "disabled", False):
        benchmark.pedantic(target, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds)
        return float(benchmark.stats.stats.median)
    times = []
    for i in range(warmup_rounds + rounds):
        args, kwargs = setup() if setup is not None else ((), {})
        t0 = time.perf_counter()
        target(*args, **kwargs)
        if i >= warmup_rounds:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    figs = config.stash.get(_FIGURES, {})
    if not figs:
        return
    tr = terminalreporter
    tr.section("NexusCart benchmark figures")
    for f in figs.values():
        line = f"{f.label:<58} {_fmt(f.value):>14} {f.unit}"
        base = figs.get(f.baseline) if f.baseline else None
        if base is not None and base.value and f.value:
            ratio = f.value / base.value if f.higher_is_better else base.value / f.value
            line += f"   ({ratio:,.1f}x {base.label}"
            over = figs.get(f.overhead) if f.overhead else None
            if over is not None and not f.higher_is_better and f.value > over.value:
                net = (base.value - over.value) / (f.value - over.value)
                line += f"; {net:,.1f}x net of {over.label}"
            line += ")"
        if f.note:
            line += f"   [{f.note}]"
        tr.write_line(line)
