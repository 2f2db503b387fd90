"""Composition root of the orders service: Kafka consumer -> OrdersProjector -> PostgreSQL."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from nexuscart import config, events
from nexuscart.adapters import kafka, postgres
from services.orders.projector import OrdersProjector
from services.runtime import ConsumerLoop

# Every subscription of this service, in one place.
TOPICS = [events.ORDERS_TOPIC, events.PAYMENTS_TOPIC]


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    await kafka.ensure_topics(
        settings.kafka.bootstrap, [*TOPICS, *map(events.dead_letter_topic, TOPICS)]
    )
    pool = await postgres.create_pool(settings.postgres)
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
    producer = kafka.producer(settings.kafka, "orders-dlq")  # dead letters only
    await producer.start()
    await consumer.start()
    try:
        projector = OrdersProjector(pool)
        await ConsumerLoop("orders", consumer, producer, projector.handle).run(stop)
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()
