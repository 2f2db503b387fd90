"""Composition root of the outbox relay process."""

from __future__ import annotations

import asyncio
import socket

from nexuscart import config
from nexuscart.adapters import kafka, redis_conn
from services.outbox_relay.relay import OutboxRelay


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    client = redis_conn.connect(settings.redis, timeout_s=5.0)
    producer = kafka.producer(settings.kafka, "relay")
    await producer.start()
    relay = OutboxRelay(client, producer, consumer=socket.gethostname())
    try:
        await relay.run(stop)
    finally:
        await producer.stop()
        await client.aclose()
