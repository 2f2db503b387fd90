"""One purchase's trace followed through edge -> Redis outbox -> relay -> Kafka header ->
orders consumer: the purchase (FlashSales.buy) starts it and stores its W3C traceparent
with the outbox entry, the relay publishes the record with its own span's traceparent in
the Kafka headers, the orders consumer applies it under a child span. Real Redis, Kafka and
PostgreSQL; the spans are collected by OpenTelemetry's in-memory exporter."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from nexuscart import _core, config, events, observability
from nexuscart.adapters import kafka
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.app.flash_sales import FlashSales
from services.outbox_relay.relay import OutboxRelay
from services.runtime import consumer_name
from tests.test_consumer_loop import Harness, pool  # noqa: F401  (the pool fixture)
from tests.test_flash_sale_store import new_sale


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    observability.setup_tracing("test", 1.0, exporter=exporter)
    yield exporter
    observability.TRACING.rate, observability.TRACING.tracer = 0.0, None


async def _no_pg() -> Any:
    raise AssertionError("buy() needs no PostgreSQL")


async def test_one_purchase_is_traced_from_the_edge_through_the_relay_to_orders(
    settings: config.Settings,
    store: FlashSaleStore,
    pool: asyncpg.Pool,  # noqa: F811
    spans: InMemorySpanExporter,
) -> None:
    topic = f"trace-{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(settings.kafka.bootstrap, [topic, events.dead_letter_topic(topic)])
    sale = new_sale(units=5, limit=1)
    await store.upsert(sale)
    stream = store.keys(sale.sale_id).outbox
    await store.join_outbox(stream)
    sales = FlashSales(
        store, _core.Gate(1e6, 10**6, 1e6, 10**6, 8), _no_pg, default_hold_ttl_s=600,
        sold_out_refresh_s=1.0,
    )  # fmt: skip
    reply = await sales.buy(sale.sale_id, 7, 1, uuid.uuid4().hex)
    assert reply.code == 0

    # the outbox entry carries the purchase span's context
    raw: Any = await store.client.xrange(stream)
    [(_, fields)] = raw
    [purchase] = spans.get_finished_spans()
    ctx = purchase.context
    version, trace, parent, flags = fields[b"tp"].decode().split("-")
    assert (version, trace, parent) == ("00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 1  # sampled

    producer = kafka.producer(settings.kafka, "trace-test")
    await producer.start()
    try:
        relay = OutboxRelay(store, producer, consumer_name(), topic=topic)
        relay.streams = {stream}
        entries = await store.read_outbox(relay.consumer, [stream], 10)
        assert await relay._publish(entries) == 1
    finally:
        await producer.stop()

    async with Harness(settings, pool, topic):
        deadline = time.monotonic() + 30
        while not any(s.name == "test-orders.apply" for s in spans.get_finished_spans()):
            assert time.monotonic() < deadline, "the orders consumer never applied the event"
            await asyncio.sleep(0.1)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    publish, apply = by_name["outbox_relay.publish"], by_name["test-orders.apply"]
    # one trace, and each hop the child of the one before
    assert {s.context.trace_id for s in (purchase, publish, apply)} == {ctx.trace_id}
    assert purchase.parent is None
    assert publish.parent is not None
    assert publish.parent.span_id == ctx.span_id
    assert apply.parent is not None
    assert apply.parent.span_id == publish.context.span_id
    assert apply.attributes is not None
    assert apply.attributes["messaging.destination.name"] == topic


async def test_an_untraced_purchase_leaves_no_trace_context_anywhere(
    store: FlashSaleStore,
) -> None:
    assert observability.TRACING.tracer is None or observability.TRACING.rate == 0
    sale = new_sale(units=5, limit=1)
    await store.upsert(sale)
    sales = FlashSales(
        store, _core.Gate(1e6, 10**6, 1e6, 10**6, 8), _no_pg, default_hold_ttl_s=600,
        sold_out_refresh_s=1.0,
    )  # fmt: skip
    assert (await sales.buy(sale.sale_id, 8, 1, uuid.uuid4().hex)).code == 0
    raw: Any = await store.client.xrange(store.keys(sale.sale_id).outbox)
    [(_, fields)] = raw
    assert b"tp" not in fields
    assert observability.consume_spans("x", []) == []


def test_work_for_a_traced_record_hangs_from_its_span_and_the_batchs_other_work_is_untraced(
    spans: InMemorySpanExporter,
) -> None:
    # Regression: the first traced record's span was current for the whole batch, so with
    # 1% of orders traced almost every payments batch (up to 500 orders) traced every one of
    # its Stripe calls: 275k span log lines in a 120 s stock-rich storm.
    from types import SimpleNamespace

    root = observability.TRACING.start("flash_sale.purchase")
    header = ("traceparent", observability.traceparent(root).encode())
    records = [
        SimpleNamespace(topic="orders.v1", partition=p, offset=1, headers=h)
        for p, h in ((0, ()), (1, (header,)))
    ]
    assert observability.TRACING.child("stripe.create_intent") is None  # no batch: no span
    with observability.traced("payments", records):
        assert observability.TRACE_ID.get() == observability.trace_id(root)
        observability.note_event(records[0], "untraced-event")
        observability.note_event(records[1], "traced-event")
        assert observability.TRACING.child("stripe.create_intent") is None  # whose call?
        with observability.for_event("untraced-event"):
            assert observability.TRACING.child("stripe.create_intent") is None
        with observability.for_event("traced-event"):
            call = observability.TRACING.child("stripe.create_intent")
        call.end()
    root.end()
    assert observability.TRACE_ID.get() == ""
    finished = spans.get_finished_spans()
    assert [s.name for s in finished].count("stripe.create_intent") == 1
    by_name = {s.name: s for s in finished}
    apply, stripe_call = by_name["payments.apply"], by_name["stripe.create_intent"]
    assert apply.parent is not None
    assert apply.parent.span_id == root.get_span_context().span_id
    assert stripe_call.parent is not None
    assert stripe_call.parent.span_id == apply.context.span_id
