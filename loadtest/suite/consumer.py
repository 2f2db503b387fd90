"""One member of a bench orders consumer group (PT-03 instances, PT-04 partitions): the orders
service's own projector (services/orders/projector.py) on a throwaway topic the suite fills,
as consumer group BENCH_GROUP of BENCH_TOPIC, so that the stack's real ``orders`` group and
``orders.v1`` are left alone. Started by loadtest/suite/events.py (``CONSUMER_ARGV``)."""

from __future__ import annotations

import asyncio
import os

from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from nexuscart import config
from nexuscart.adapters import postgres
from services.orders.projector import OrdersProjector
from services.runtime import consume


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    pool = await postgres.create_pool(settings.postgres)
    try:
        await consume(
            settings,
            os.environ["BENCH_GROUP"],
            [os.environ["BENCH_TOPIC"]],
            OrdersProjector(pool).handle,
            stop,
            partition_assignment_strategy=(RangePartitionAssignor,),  # as services/orders
        )
    finally:
        await pool.close()
