"""The services' metrics (nexuscart.observability): consumer records, retries and lag per
partition from a real ConsumerLoop on real Kafka, the outbox backlog and age from real Redis,
the payments provider's counters and breaker, and the /metrics endpoint they are served on."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from nexuscart import config, events, observability
from nexuscart.adapters import kafka
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.payments_stripe import LATENCY_BUCKETS, CallStats
from services.outbox_relay import pg_outbox
from services.outbox_relay.relay import OutboxRelay
from services.runtime import ConsumerLoop, consumer_name
from tests.test_consumer_loop import pool  # noqa: F401  (the pool fixture)
from tests.test_flash_sale_store import buy, new_sale


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def until(predicate: Callable[[], bool | Awaitable[bool]], within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        got = predicate()
        if got if isinstance(got, bool) else await got:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_consumer_loop_counts_records_and_its_lag_per_partition_falls_to_zero(
    settings: config.Settings,
) -> None:
    from aiokafka import AIOKafkaConsumer

    topic = f"metrics-{uuid.uuid4().hex[:8]}"
    name = f"metrics-test-{uuid.uuid4().hex[:6]}"
    await kafka.ensure_topics(
        settings.kafka.bootstrap, [topic, events.dead_letter_topic(topic)], partitions=3
    )
    producer = kafka.producer(settings.kafka, "metrics-test")
    await producer.start()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    seen: list[Any] = []
    gate = asyncio.Event()

    async def handle(envs: list[Any]) -> None:
        await gate.wait()  # hold the first batch: its records count as lag meanwhile
        seen.extend(envs)

    loop = ConsumerLoop(name, consumer, producer, handle, decode=lambda b: b)
    stop = asyncio.Event()
    await consumer.start()
    task = asyncio.create_task(loop.run(stop))
    try:
        for i in range(30):
            await producer.send_and_wait(topic, value=b"x%d" % i, key=b"%d" % i)

        def lag_total() -> float:
            return sum(
                sample(
                    "nexuscart_kafka_consumer_lag_records",
                    consumer=name,
                    topic=topic,
                    partition=str(p),
                )
                or 0.0
                for p in range(3)
            )

        await until(lambda: lag_total() > 0)
        gate.set()
        await until(lambda: len(seen) == 30)
        await until(lambda: lag_total() == 0)
        assert (
            sample(
                "nexuscart_consumer_records_total", consumer=name, topic=topic, outcome="applied"
            )
            == 30
        )
        # every partition that received records has its own series
        parts = {
            p
            for p in range(3)
            if sample(
                "nexuscart_kafka_consumer_lag_records",
                consumer=name,
                topic=topic,
                partition=str(p),
            )
            is not None
        }
        assert len(parts) >= 2
        assert (sample("nexuscart_consumer_batch_duration_seconds_count", consumer=name) or 0) >= 1
    finally:
        stop.set()
        await task
        await consumer.stop()
        await producer.stop()


async def test_relay_measures_the_backlog_and_age_of_the_flash_sale_outboxes(
    store: FlashSaleStore,
) -> None:
    sale = new_sale(units=10, limit=1)
    stream = store.keys(sale.sale_id).outbox
    await store.upsert(sale)
    await store.join_outbox(stream)
    await asyncio.gather(*(buy(store, sale, user=u) for u in range(4)))
    waiting, oldest_ms = await store.outbox_backlog([stream])
    assert waiting == 4
    assert oldest_ms is not None
    assert abs(oldest_ms / 1000 - time.time()) < 60
    assert await store.outbox_backlog([b"fs:no-such-stream"]) == (0, None)

    relay = OutboxRelay(store, None, consumer_name())  # measure() sends nothing
    await relay.measure()
    assert (sample("nexuscart_outbox_backlog_entries", outbox="flash_sales") or 0) >= 4
    assert (sample("nexuscart_outbox_oldest_age_seconds", outbox="flash_sales") or -1) >= 0


async def test_relay_measures_the_backlog_and_age_of_the_postgresql_outboxes(
    pool: asyncpg.Pool,  # noqa: F811
) -> None:
    await pg_outbox.measure(pool)
    for outbox in ("users", "catalog", "payments", "orders"):
        waiting = sample("nexuscart_outbox_backlog_entries", outbox=outbox)
        age = sample("nexuscart_outbox_oldest_age_seconds", outbox=outbox)
        assert waiting is not None
        assert waiting >= 0
        assert age is not None
        assert age >= 0


class _Provider:
    """The two things the collector reads of a StripeProvider, set by the test."""

    def __init__(self) -> None:
        self.stats = CallStats()
        self.state = "closed"

    def breaker_state(self) -> str:
        return self.state


def test_payments_collector_exports_the_provider_counters_and_the_breaker() -> None:
    provider = _Provider()
    provider.stats.attempt("create_intent")
    provider.stats.attempt("create_intent")
    provider.stats.outcome("create_intent", "ok", 0.02)
    unregister = observability.register(observability.PaymentsCollector(provider, LATENCY_BUCKETS))
    try:
        assert sample("nexuscart_payments_provider_attempts_total", operation="create_intent") == 2
        labels = {"operation": "create_intent", "outcome": "ok"}
        assert sample("nexuscart_payments_provider_calls_total", **labels) == 1
        assert sample("nexuscart_payments_provider_call_duration_seconds_bucket", le="0.025") == 1
        assert sample("nexuscart_payments_breaker_open") == 0
        provider.state = "opened"
        assert sample("nexuscart_payments_breaker_open") == 1
        assert sample("nexuscart_payments_breaker_state", state="opened") == 1
    finally:
        unregister()


def test_a_service_serves_its_metrics_on_the_configured_loopback_port() -> None:
    assert observability.serve_metrics(0) is None
    port = free_port()
    server = observability.serve_metrics(port)
    assert server is not None
    try:
        observability.HOLDS_EXPIRED.inc(0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert "nexuscart_flash_sale_expired_units" in names  # counters lose _total here
        assert "nexuscart_consumer_records" in names
    finally:
        server.shutdown()
        server.server_close()
