"""The performance suite's report and plots from a tiny synthetic result set (no load), so
that a change to the result shapes cannot leave ``scripts/bench suite`` unable to draw its
figures; the pure figures the report derives; and PT-02's bench-only synchronous purchase
on the test stack's PostgreSQL."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtest.suite import report, sync_app
from loadtest.suite.phases import measured, prepare_sync
from loadtest.suite.sampler import name_of
from nexuscart import config

T0 = 1_800_000_000.0


def _wrk(rps: float, p99: float) -> dict[str, Any]:
    pcts = {"50": p99 / 4, "75": p99 / 3, "90": p99 / 2, "95": p99 / 1.5, "99": p99}
    pcts |= {"99.9": p99 * 2, "99.99": p99 * 3, "100": p99 * 4}
    res = {"cpu_cores": 0.9, "rss_mb": 120.0}
    return {
        "connections": 10,
        "rps": rps,
        "total": int(rps),
        "non2xx": 0,
        "errors": 0,
        "percentiles_ms": pcts,
        "p50_ms": pcts["50"],
        "p95_ms": pcts["95"],
        "p99_ms": p99,
        "t0": T0,
        "t1": T0 + 1,
        "resources": {"edge (Granian workers)": res, "wrk": {"cpu_cores": 0.4, "rss_mb": 8.0}},
    }


def _drain(parts: int, rate: float) -> dict[str, Any]:
    return {
        "partitions": parts,
        "consumers": 2,
        "events": 100,
        "rows": 100,
        "events_per_s": rate,
        "latency_ms": {"n": 100, "p50": 40.0, "p95": 90.0, "p99": 120.0, "max": 150.0},
        "lag": [[T0, 0], [T0 + 0.5, 60], [T0 + 1, 0]],
        "messages_by_partition": {str(p): 100 // parts for p in range(parts)},
        "t0": T0,
        "resources": {"orders consumers (PT-03/04)": {"cpu_cores": 1.0, "rss_mb": 90.0}},
    }


def _purchase(path: str) -> dict[str, Any]:
    lat = {"n": 3, "p50": 5.0, "p95": 9.0, "p99": 10.0, "max": 11.0}
    return {
        **_wrk(3000.0 if path == "async" else 800.0, 20.0),
        "connections": 64,
        "orders_per_s": 1200.0 if path == "async" else 790.0,
        **(
            {"holds": 10, "orders": 10, "payments": 10, "payments_drain_s": 1.0}
            if path == "async"
            else {}
        ),
        "queues": {"outbox": [[T0, 0], [T0 + 1, 40]], "lag": [[T0, 3], [T0 + 1, 0]]},
        "latency": {
            "e2e_ms": lat,
            "request_ms": lat,
            "series": [[T0 + 0.1, 5.0], [T0 + 0.5, 8.0]],
            "breakdown_ms": {"request": lat, "outbox to Kafka": lat, "Kafka to order row": lat},
        },
    }


def _locust(stages: list[list[int]] | None) -> dict[str, Any]:
    history = [
        {"t": T0 + i, "users": 10.0, "rps": 100.0, "fails_per_s": 0.0, "p50": 5.0, "p95": 10.0}
        | {"p99": 20.0}
        for i in range(9)
    ]
    for h in history[3:6]:
        h.update(users=100.0, p95=80.0)
    agg = {"requests": 900.0, "failures": 0.0, "rps": 100.0, "p50": 5.0, "p95": 12.0}
    return {
        "users": 10,
        "workers": 2,
        "history": history,
        "stages": stages,
        "stats": {"Aggregated": agg | {"p99": 20.0}, "GET /products": agg | {"p99": 20.0}},
        "queues": {"outbox": [[T0 + 4, 12]], "lag": [[T0 + 4, 30]]},
        "limit": "the server (the two cores)",
        "cpu_cores": {"locust": 0.5, "server": 1.5},
        "resources": {"Locust workers": {"cpu_cores": 0.5, "rss_mb": 60.0}},
    }


def synthetic() -> dict[str, Any]:
    levels = ("10", "50")
    return {
        "run": "synthetic",
        "profile": "test",
        "date": "2026-01-01T00:00:00+00:00",
        "command": "scripts/bench suite --quick",
        "machine": report.machine(),
        "workers": 2,
        "notes": ["cart and checkout routes are not in this build's OpenAPI"],
        "ceiling": {lv: _wrk(10_000.0 * (i + 1), 2.0) for i, lv in enumerate(levels)},
        "pt01": {
            name: {lv: _wrk(5000.0 * (i + 1), 5.0) for i, lv in enumerate(levels)}
            for name in ("GET /products", "GET /products/{id}", "GET /users/me/orders")
        },
        "pt02": {"sync": _purchase("sync"), "async": _purchase("async")},
        "pt03": {
            "edge": {"1": _wrk(5000.0, 4.0), "2": _wrk(9000.0, 4.0)},
            "instances": {"1": _drain(12, 900.0), "2": _drain(12, 1500.0)},
        },
        "pt04": {"1": _drain(1, 700.0), "3": _drain(3, 1000.0)},
        "mix": _locust(None),
        "pt05": _locust([[10, 3], [100, 3], [10, 3]]),
    }


def test_report_writes_every_plot_and_the_tables_from_a_synthetic_run(tmp_path: Path) -> None:
    files = report.write(synthetic(), tmp_path)
    for name, _ in report.PLOTS:
        png = tmp_path / name
        assert png in files
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "README.md").read_text()
    for heading in ("PT-01", "PT-02", "PT-03", "PT-04", "PT-05", "Shopper mix", "Resource use"):
        assert f"## {heading}" in text
    assert "vs ceiling" in text
    assert "10 payment intents" in text
    assert "cores" in text  # the machine line
    assert json.loads((tmp_path / "results.json").read_text())["run"] == "synthetic"


def test_report_draws_placeholders_when_phases_are_missing(tmp_path: Path) -> None:
    res = {
        "run": "empty",
        "machine": report.machine(),
        "notes": ["pt01 failed: boom"],
        "pt02": {"async": None, "sync": None},  # both halves failed
        "pt03": {"edge": None, "instances": None},
    }
    report.write(res, tmp_path)
    assert all((tmp_path / name).stat().st_size > 0 for name, _ in report.PLOTS)
    text = (tmp_path / "README.md").read_text()
    assert "pt01 failed" in text
    assert "## PT-02" not in text  # no empty tables
    assert "## PT-03" not in text


@given(st.lists(st.floats(1, 1e6), min_size=1, max_size=6))
def test_saturation_is_the_lowest_concurrency_within_five_percent_of_the_best(
    rps: list[float],
) -> None:
    by = {str(10 * (i + 1)): {"rps": r} for i, r in enumerate(rps)}
    sat = report.saturation(by)
    assert sat is not None
    assert by[str(sat)]["rps"] >= report.SATURATION * max(rps)
    assert all(by[k]["rps"] < report.SATURATION * max(rps) for k in by if int(k) < sat)


def test_recovery_counts_from_the_burst_end_until_the_p95_is_back() -> None:
    stages = [[10, 3], [100, 3], [10, 6]]
    users = [0.0, 10.0, 10.0, 10.0, 10.0, 60.0, 100.0, 100.0, 100.0] + [10.0] * 7
    hist = [
        {"t": T0 + i, "users": u, "rps": 100.0, "fails_per_s": 0.0, "p95": 10.0}
        for i, u in enumerate(users)
    ]
    for h in hist[5:9]:
        h["p95"] = 80.0
    # the burst's users leave after T0 + 8; at T0 + 9 and 10 the p95 is back
    assert report.recovery_s(hist, stages) == 0.0
    for h in hist[9:11]:
        h["p95"] = 90.0
    assert report.recovery_s(hist, stages) == 2.0
    for h in hist[11:]:
        h["fails_per_s"] = 1.0
    assert report.recovery_s(hist, stages) is None


def test_efficiency_and_balance() -> None:
    eff = report.efficiency({"1": {"rps": 100.0}, "2": {"rps": 150.0}, "4": {"rps": 160.0}}, "rps")
    assert eff == {"1": 1.0, "2": 0.75, "4": 0.4}
    assert report.balance({"0": 10, "1": 10}) == 1.0
    assert report.balance({"0": 30, "1": 10}) == 1.5
    assert report.balance({}) is None


def test_error_rate_of_a_history() -> None:
    hist = [{"rps": 100.0, "fails_per_s": 1.0}, {"rps": math.nan, "fails_per_s": math.nan}]
    assert report.error_rate(hist) == 0.01


def test_measured_reads_the_percentiles_and_errors_report_lua_prints() -> None:
    raw = (
        "Requests/sec: 10.0\n"
        "percentiles_us: 50=1000 75=1500 90=2000 95=2500 99=4000 99.9=9000 99.99=9900 100=10000\n"
        "errors: connect=0 read=2 write=0 status=3 timeout=1\n"
    )
    r = measured({"rps": 10.0, "total": 100, "non2xx": 3, "raw": raw})
    assert r["p95_ms"] == 2.5
    assert r["percentiles_ms"]["99.9"] == 9.0
    assert r["errors"] == 3 + 6
    assert "raw" not in r


def test_processes_are_named_by_part() -> None:
    assert name_of("/usr/bin/wrk -t1 -c10 http://127.0.0.1:1/") == "wrk"
    assert name_of("python -m granian --interface rsgi loadtest.bare_app:app") == (
        "bare Granian (ceiling)"
    )
    assert name_of("python -m granian --interface rsgi edge.app:app") == "edge (Granian workers)"
    assert name_of("python -m locust -f loadtest/locustfile.py --worker") == "Locust workers"
    assert name_of("python -m locust -f loadtest/locustfile.py --master") == "Locust master"
    assert name_of("python -m loadtest.suite.consumer") == "orders consumers (PT-03/04)"


async def test_sync_bench_purchase_commits_its_order_in_the_request_and_nothing_when_sold_out(
    settings: config.Settings, migrated: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = settings.postgres.dsn
    monkeypatch.setenv("PG_DSN", dsn)
    sale = 990_000_000 + int(time.time()) % 1_000_000
    await prepare_sync(dsn, sale, units=1)
    try:
        order_id = await sync_app.purchase(user_id=7, sale_id=sale, quantity=1)
        assert order_id is not None
        assert await sync_app.purchase(user_id=8, sale_id=sale, quantity=1) is None
    finally:
        if sync_app._pool is not None:
            await sync_app._pool.close()
            sync_app._pool = None
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT user_id, order_id FROM orders WHERE sale_id = $1", sale)
        left = await conn.fetchval("SELECT units FROM bench_sync_stock WHERE sale_id = $1", sale)
    finally:
        await conn.close()
    assert [(r["user_id"], r["order_id"]) for r in rows] == [(7, order_id)]  # 8's rolled back
    assert left == 0
