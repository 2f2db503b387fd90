"""Composition root of the orders service: Kafka consumer -> OrdersProjector -> PostgreSQL."""

from __future__ import annotations

import asyncio

from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from nexuscart import config, events
from nexuscart.adapters import postgres
from services.orders.projector import OrdersProjector
from services.runtime import consume

# Every subscription of this service, in one place.
TOPICS = [events.ORDERS_TOPIC, events.PAYMENTS_TOPIC]


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    pool = await postgres.create_pool(settings.postgres)
    try:
        await consume(
            settings,
            "orders",
            TOPICS,
            OrdersProjector(pool).handle,
            stop,
            # range assignment gives a consumer the same partition numbers of both topics, and
            # with ShardPartitioner the same partition number means the same shards (ADR 0004)
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
    finally:
        await pool.close()
