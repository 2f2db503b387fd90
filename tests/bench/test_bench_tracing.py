"""Tracing on the purchase hot path: ``FlashSales.buy`` (gate slot, the batched Redis script,
outbox entry) for 2,000 buyers of one sale at once, against real Redis, with tracing off,
at the default head-sampling rate (TRACE_SAMPLE=0.01) and with every purchase traced
(the cost of one traced purchase, from which the 1% rate's share follows with less noise
than the direct ratio). Spans go to the log exporter the services use (batched, a thread).

    NEXUSCART_BENCH=1 .venv/bin/python -m pytest tests/bench/test_bench_tracing.py \\
        --benchmark-enable -q -p no:cacheprovider
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from typing import Any, Final

import pytest

from nexuscart import _core, config, observability
from nexuscart.adapters import redis_conn
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.app.flash_sales import FlashSales
from tests.bench.conftest import Figure, Figures, measure
from tests.test_flash_sale_store import new_sale

pytestmark = pytest.mark.benchmark_only

BUYERS: Final = 2_000
ROUNDS: Final = 15
_users = itertools.count(1)


async def _no_pg() -> Any:
    raise AssertionError("buy() needs no PostgreSQL")


class Storm:
    """One event loop, store and use case for every round (as one edge worker has)."""

    def __init__(self, settings: config.Settings):
        self.loop = asyncio.new_event_loop()
        self.client = redis_conn.connect(settings.redis, 5.0)
        self.store = FlashSaleStore(self.client, RedisPipe(settings.redis.url, 5.0))
        gate = _core.Gate(1e9, 10**9, 1e9, 10**9, 10**6)
        self.sales = FlashSales(
            self.store, gate, _no_pg, default_hold_ttl_s=600, sold_out_refresh_s=60.0
        )

    def new_round(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        sale = new_sale(units=BUYERS, limit=1)
        self.loop.run_until_complete(self.store.upsert(sale))
        return (sale.sale_id, [next(_users) for _ in range(BUYERS)]), {}

    def buy_all(self, sale_id: int, users: list[int]) -> None:
        async def storm() -> None:
            replies = await asyncio.gather(
                *(self.sales.buy(sale_id, u, 1, uuid.uuid4().hex) for u in users)
            )
            assert all(r.code == 0 for r in replies)

        self.loop.run_until_complete(storm())

    def close(self) -> None:
        self.store.close()
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(asyncio.sleep(0.05))  # let the transports finish closing
        self.loop.close()


@pytest.fixture(scope="module")
def storm(settings: config.Settings) -> Iterator[Storm]:
    s = Storm(settings)
    yield s
    s.close()


@pytest.fixture
def tracing_at(request: pytest.FixtureRequest) -> Iterator[float]:
    rate: float = request.param
    if rate:
        observability.setup_tracing("bench", rate, "log")
    yield rate
    if observability.TRACING.provider is not None:
        observability.TRACING.provider.shutdown()
    observability.TRACING.rate, observability.TRACING.tracer = 0.0, None


LABELS: Final = {0.0: "off", 0.01: "1% (default)", 1.0: "every purchase"}


@pytest.mark.benchmark(group="tracing: purchase hot path")
@pytest.mark.parametrize("tracing_at", [0.0, 0.01, 1.0], indirect=True)
def test_bench_purchase_with_tracing(
    benchmark: Any, storm: Storm, tracing_at: float, figures: Figures
) -> None:
    secs = measure(benchmark, storm.buy_all, rounds=ROUNDS, setup=storm.new_round)
    us = secs / BUYERS * 1e6
    key = f"tracing.{tracing_at}"
    figures.add(
        key,
        Figure(
            f"purchase (FlashSales.buy, real Redis), tracing {LABELS[tracing_at]}",
            us,
            "us/purchase",
            higher_is_better=False,
            baseline=None if tracing_at == 0.0 else "tracing.0.0",
        ),
    )
    benchmark.extra_info["us_per_purchase"] = us
    off = figures.get("tracing.0.0")
    if tracing_at == 1.0 and off is not None:
        # the default rate's expected cost: 1% of the purchases pay a traced one's extra
        est = off.value + 0.01 * (us - off.value)
        figures.add(
            "tracing.estimate",
            Figure(
                "purchase, tracing 1%: off + 1% of (traced - off)",
                est,
                "us/purchase",
                higher_is_better=False,
                baseline="tracing.0.0",
                note=f"+{(est / off.value - 1) * 100:.1f}%",
            ),
        )
