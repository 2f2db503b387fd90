"""Orders writer throughput into the real PostgreSQL of the test stack.

1. ``OrdersProjector.handle`` alone: batches of synthetic ``StockReserved`` envelopes (fresh
   users, orders and event ids every round), grouped by shard and written per group; beside
   it, in the same run, the former single-statement write per group as the baseline.
2. End to end from Kafka: N events produced to a fresh topic (untimed), then the services'
   consumer loop ``services.runtime.ConsumerLoop`` runs until all N orders are in
   PostgreSQL. Reported both from the consumer's start (group join included) and from its
   first batch (the sustained rate).

Target (issue 4): >= 5,000 orders/s on the 2-core dev machine.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from nexuscart import config, events
from nexuscart.adapters import kafka
from services.orders.projector import OrdersProjector
from services.runtime import ConsumerLoop
from tests.bench.conftest import Figure, Figures, measure
from tests.conftest import Projection
from tests.envelopes import encode, envelope

pytestmark = pytest.mark.benchmark_only

E2E_EVENTS: Final = 50_000
PARTITIONS: Final = 6  # what kafka.ensure_topics gives the real topics
_sale_ids = itertools.count(1_000_000)  # above the sales the flash-sale tests create
_order_seq = itertools.count(1)


def reserved_batch(n: int, sale_id: int) -> list[events.Envelope]:
    """n StockReserved envelopes for n distinct (user, order), as the purchase Lua writes them."""
    expires = int(time.time() * 1000) + 600_000
    out = []
    for _ in range(n):
        seq = next(_order_seq)
        user_id = 1 + (seq * 2_654_435_761) % 50_000_000  # spread over users, hence shards
        data = events.StockReserved(
            order_id=(sale_id << 24) | seq,
            sale_id=sale_id,
            user_id=user_id,
            sku=f"SKU-{sale_id}",
            quantity=1,
            unit_price_cents=1999,
            currency="usd",
            expires_at_ms=expires,
        )
        out.append(envelope(data, key=user_id))
    return out


async def _count_orders(dsn: str, sale_id: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM orders WHERE sale_id = $1", sale_id)
        return n
    finally:
        await conn.close()


# The former write of a shard group, one statement (inbox, orders and items as
# data-modifying CTEs over unnest): fast on plain PostgreSQL, but Citus plans it as
# subplans pulled to the coordinator. Measured beside the per-shard-group transaction of
# single-shard statements that replaced it, in the same run, for the ratio.
SINGLE_STATEMENT: Final = """
WITH ev AS (
    SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::bigint[], $5::text[],
                         $6::int[], $7::bigint[], $8::text[], $9::bigint[])
        AS e(user_id, event_id, order_id, sale_id, sku, quantity, unit_price, currency,
             expires_ms)
), fresh AS (
    INSERT INTO inbox (user_id, consumer, event_id)
    SELECT user_id, $10, event_id FROM ev
    ON CONFLICT DO NOTHING
    RETURNING user_id, event_id
), new AS (
    SELECT ev.* FROM ev JOIN fresh USING (user_id, event_id)
), o AS (
    INSERT INTO orders (user_id, order_id, sale_id, status, total_cents, currency, expires_at)
    SELECT user_id, order_id, sale_id, 'PENDING_PAYMENT', quantity * unit_price, currency,
           to_timestamp(expires_ms / 1000.0)
    FROM new
    ON CONFLICT DO NOTHING
), i AS (
    INSERT INTO order_items (user_id, order_id, line_no, sku, quantity, unit_price_cents)
    SELECT user_id, order_id, 1, sku, quantity, unit_price FROM new
    ON CONFLICT DO NOTHING
)
SELECT count(*) AS fresh FROM fresh
"""


class SingleStatementProjector(OrdersProjector):
    """The baseline: each shard group's StockReserved events in SINGLE_STATEMENT."""

    async def _write_group_pooled(self, group: list[events.Envelope]) -> int:
        cols: list[list[object]] = [[] for _ in range(9)]
        for e in group:
            d = e.data
            assert isinstance(d, events.StockReserved)
            row = (d.user_id, e.id, d.order_id, d.sale_id, d.sku, d.quantity,
                   d.unit_price_cents, d.currency, d.expires_at_ms)  # fmt: skip
            for col, v in zip(cols, row, strict=True):
                col.append(v)
        async with self.pool.acquire() as conn:
            n: int = await conn.fetchval(SINGLE_STATEMENT, *cols, "orders")
        return n


# form varies fastest: the two forms of one batch size run back to back (similar load)
@pytest.mark.parametrize("form", ["single_statement", "per_shard_transaction"])
@pytest.mark.parametrize("batch_size", [500, 2000])
@pytest.mark.benchmark(group="orders writer: OrdersProjector.handle")
def test_bench_projector_handle(
    benchmark: Any,
    figures: Figures,
    projection: Projection,
    settings: config.Settings,
    batch_size: int,
    form: str,
) -> None:
    sale_id = next(_sale_ids)
    rounds = 20
    projector = (
        projection.projector
        if form == "per_shard_transaction"
        else SingleStatementProjector(projection.pool)
    )
    applied = 0

    def run(batch: Sequence[events.Envelope]) -> None:
        nonlocal applied
        applied += projection.runner.run(projector.handle(batch))

    secs = measure(
        benchmark, run, rounds=rounds, setup=lambda: ((reserved_batch(batch_size, sale_id),), {})
    )
    written = projection.runner.run(_count_orders(settings.postgres.dsn, sale_id))
    assert written == applied == batch_size * (rounds + 1)
    rate = batch_size / secs
    benchmark.extra_info["orders_per_s"] = rate
    if form == "single_statement":
        figures.add(
            f"writer.single.{batch_size}",
            Figure(f"(baseline) one CTE statement per group, batches of {batch_size}", rate,
                   "orders/s"),
        )  # fmt: skip
    else:
        figures.add(
            f"writer.handle.{batch_size}",
            Figure(f"orders writer: handle(), batches of {batch_size}", rate, "orders/s",
                   baseline=f"writer.single.{batch_size}"),
        )  # fmt: skip


class TimedProjector(OrdersProjector):
    """Records when the first batch arrived, to separate group join from sustained rate,
    and how many events were applied, to know when all of them are in."""

    first_batch_at: float | None = None
    batches = 0
    applied = 0

    async def handle(self, batch: Sequence[events.Envelope]) -> int:
        if self.first_batch_at is None:
            self.first_batch_at = time.perf_counter()
        self.batches += 1
        n = await super().handle(batch)
        self.applied += n
        return n


async def _produce(settings: config.Settings, topic: str, envs: list[events.Envelope]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = kafka.producer(settings.kafka, "bench")
    await producer.start()
    try:
        sends = [await producer.send(topic, value=encode(e), key=e.key.encode()) for e in envs]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _consume_all(
    settings: config.Settings, topic: str, n: int, pool: Any
) -> tuple[float, float, TimedProjector]:
    """Run the service's consumer loop until n events are applied; (total s, sustained s)."""
    projector = TimedProjector(pool)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=f"bench-orders-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = kafka.producer(settings.kafka, "bench-dlq")  # dead letters (none expected)
    stop = asyncio.Event()
    await producer.start()
    t0 = time.perf_counter()
    await consumer.start()
    loop = ConsumerLoop("bench-orders", consumer, producer, projector.handle)
    task = asyncio.create_task(loop.run(stop))
    try:
        deadline = t0 + 300
        while projector.applied < n:
            if task.done():
                task.result()  # raises what killed the loop
                raise AssertionError("consumer loop ended early")
            if time.perf_counter() > deadline:
                raise AssertionError(f"only {projector.applied} of {n} applied in 300 s")
            await asyncio.sleep(0.005)
        done = time.perf_counter()
    finally:
        stop.set()
        await task
        await consumer.stop()
        await producer.stop()
    assert loop.dead_lettered == 0
    assert projector.first_batch_at is not None
    return done - t0, done - projector.first_batch_at, projector


@pytest.mark.benchmark(group="orders writer: Kafka -> PostgreSQL")
def test_bench_orders_from_kafka_end_to_end(
    benchmark: Any, figures: Figures, projection: Projection, settings: config.Settings
) -> None:
    sale_id = next(_sale_ids)
    topic = f"bench.orders.{uuid.uuid4().hex[:8]}"
    envs = reserved_batch(E2E_EVENTS, sale_id)
    t0 = time.perf_counter()
    projection.runner.run(_produce(settings, topic, envs))
    produce_s = time.perf_counter() - t0
    result: dict[str, Any] = {}

    def run() -> None:
        total, sustained, projector = projection.runner.run(
            _consume_all(settings, topic, E2E_EVENTS, projection.pool)
        )
        result.update(total=total, sustained=sustained, batches=projector.batches)

    measure(benchmark, run, rounds=1, warmup_rounds=0)
    assert projection.runner.run(_count_orders(settings.postgres.dsn, sale_id)) == E2E_EVENTS
    total_rate = E2E_EVENTS / result["total"]
    sustained_rate = E2E_EVENTS / result["sustained"]
    benchmark.extra_info.update(
        orders_per_s=total_rate,
        sustained_orders_per_s=sustained_rate,
        batches=result["batches"],
        produce_s=produce_s,
    )
    note = f"{E2E_EVENTS:,} events, {PARTITIONS} partitions, {result['batches']} batches"
    figures.add(
        "writer.e2e.total",
        Figure("orders writer: Kafka -> PG, from consumer start", total_rate, "orders/s",
               note=note),
    )  # fmt: skip
    figures.add(
        "writer.e2e.sustained",
        Figure("orders writer: Kafka -> PG, from first batch", sustained_rate, "orders/s"),
    )
    figures.add(
        "kafka.produce",
        Figure("(setup) idempotent producer, acks=all", E2E_EVENTS / produce_s, "events/s"),
    )
