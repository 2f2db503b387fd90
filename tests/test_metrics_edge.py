"""The edge counts every Rust gate decision (flash_sale_gate_decisions_total{decision}) into
its own counters, and /metrics renders them with the conventions' names."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from nexuscart import _core
from nexuscart.app.flash_sales import FlashSales
from nexuscart.web import Metrics


async def _no_pg() -> Any:
    raise AssertionError("admit() needs no PostgreSQL")


def test_every_gate_decision_is_counted_by_decision() -> None:
    metrics = Metrics()
    # one token per user and no refill: a user's second attempt is rate limited
    gate = _core.Gate(1e-9, 1, 1e6, 1_000_000, 8)
    sales = FlashSales(
        None,  # type: ignore[arg-type]  # admit() and a refused enter() never reach Redis
        gate,
        _no_pg,
        default_hold_ttl_s=600,
        sold_out_refresh_s=1.0,
        counters=metrics.counters,
    )
    assert sales.admit(1, 10, "127.0.0.1") is None
    assert sales.admit(1, 10, "127.0.0.1") is not None  # rate limited
    gate.mark_sold_out(1)
    assert sales.admit(1, 11, "127.0.0.1") is not None  # sold out
    got = {
        s.labels["decision"]: s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        if f.name == "nexuscart_flash_sale_gate_decisions"
        for s in f.samples
    }
    assert got == {"admit": 1, "rate_limited": 1, "sold_out": 1}
