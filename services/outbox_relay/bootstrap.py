"""Composition root of the outbox relay process: the flash-sale outboxes in Redis, and the
users, catalog, payments and orders outboxes in PostgreSQL, each relayed to Kafka by its own
loop."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from nexuscart import config, events
from nexuscart.adapters import kafka, postgres, redis_conn
from nexuscart.adapters.catalog_repo import CatalogRepo
from nexuscart.adapters.catalog_store import CatalogStore
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.orders_repo import OrdersRepo
from nexuscart.adapters.payments_repo import PaymentsRepo
from nexuscart.adapters.reservations import ReservationStore
from nexuscart.adapters.users_repo import UsersRepo
from services.outbox_relay import pg_outbox
from services.outbox_relay.catalog import CatalogOutboxRelay
from services.outbox_relay.payments import PaymentsOutboxRelay
from services.outbox_relay.pg_outbox import PgOutboxRelay
from services.outbox_relay.relay import OutboxRelay
from services.outbox_relay.users import UsersOutboxRelay
from services.runtime import consumer_name, sleep_or_stop

MEASURE_EVERY_S = 5.0  # as often as Prometheus scrapes (scripts/server, compose)


async def measure(relay: OutboxRelay, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Every outbox's backlog and age gauges (Redis streams and PostgreSQL tables)."""
    while not stop.is_set():
        try:
            await relay.measure()
            await pg_outbox.measure(pool)
        except Exception:  # a metric must never stop the relay
            logging.getLogger("nexuscart.relay").debug("outbox measure failed", exc_info=True)
        await sleep_or_stop(stop, MEASURE_EVERY_S)


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    client = redis_conn.connect(settings.redis, timeout_s=5.0)
    await kafka.ensure_topics(
        settings.kafka.bootstrap,
        [events.USERS_TOPIC, events.CATALOG_TOPIC, events.PAYMENTS_TOPIC],
    )
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> asyncpg.Pool:
        return pool

    producer = kafka.producer(settings.kafka, "relay")
    await producer.start()
    relay = OutboxRelay(
        FlashSaleStore(client),
        producer,
        consumer=consumer_name(),
        claim_idle_ms=settings.relay.claim_idle_ms,
    )
    users = UsersOutboxRelay(UsersRepo(pg), producer)
    # the levels it completes also reach the everyday checkout's copy
    mirror = ReservationStore(client).mirror_levels
    catalog = CatalogOutboxRelay(CatalogRepo(pg), producer, CatalogStore(client, mirror=mirror))
    payments = PaymentsOutboxRelay(PaymentsRepo(pg), producer)
    # people's order transitions (OrderStatusChanged), keyed by the buyer like orders.v1
    orders = PgOutboxRelay(OrdersRepo(pg), producer, lambda r: r.user_id, "orders")
    try:
        await asyncio.gather(
            relay.run(stop),
            users.run(stop),
            catalog.run(stop),
            payments.run(stop),
            orders.run(stop),
            measure(relay, pool, stop),
        )
    finally:
        await producer.stop()
        await pool.close()
        await client.aclose()
