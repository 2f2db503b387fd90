"""Composition root of the orders service: Kafka consumer -> OrdersProjector -> PostgreSQL."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from nexuscart import config, events
from nexuscart.adapters import kafka, postgres, redis_conn
from nexuscart.adapters.flash_sales import FlashSaleStore
from services.orders.projector import OrdersProjector

log = logging.getLogger("nexuscart.orders")
# Every subscription of this service, in one place.
TOPICS = [events.ORDERS_TOPIC, events.PAYMENTS_TOPIC]


async def consume(
    projector: OrdersProjector, consumer: AIOKafkaConsumer, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=250, max_records=2000)
        envs: list[events.Envelope] = []
        for records in batches.values():
            for rec in records:
                try:
                    envs.append(events.decode(rec.value))
                except msgspec.DecodeError:
                    # not ours to fix: record it and move on rather than block the partition
                    log.error("undecodable event at %s:%s:%s", rec.topic, rec.partition, rec.offset)
        if envs:
            await projector.handle(envs)
        if batches:
            await consumer.commit()  # only after the database committed


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    await kafka.ensure_topics(settings.kafka.bootstrap, TOPICS)
    pool = await postgres.create_pool(settings.postgres)
    client = redis_conn.connect(settings.redis, timeout_s=5.0)
    consumer = AIOKafkaConsumer(
        *TOPICS,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id="orders",
        client_id=f"{settings.kafka.client_id}-orders",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        # range assignment gives a consumer the same partition numbers of both topics, and
        # with ShardPartitioner the same partition number means the same shards (ADR 0004)
        partition_assignment_strategy=(RangePartitionAssignor,),
    )
    await consumer.start()
    try:
        await consume(OrdersProjector(pool, FlashSaleStore(client)), consumer, stop)
    finally:
        await consumer.stop()
        await pool.close()
        await client.aclose()
