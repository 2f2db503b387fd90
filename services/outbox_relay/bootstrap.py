"""Composition root of the outbox relay process."""

from __future__ import annotations

import asyncio

from nexuscart import config
from nexuscart.adapters import kafka, redis_conn
from nexuscart.adapters.flash_sales import FlashSaleStore
from services.outbox_relay.relay import OutboxRelay, consumer_name


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    client = redis_conn.connect(settings.redis, timeout_s=5.0)
    producer = kafka.producer(settings.kafka, "relay")
    await producer.start()
    relay = OutboxRelay(
        FlashSaleStore(client),
        producer,
        consumer=consumer_name(),
        claim_idle_ms=settings.relay.claim_idle_ms,
    )
    try:
        await relay.run(stop)
    finally:
        await producer.stop()
        await client.aclose()
