"""One member of a bench orders consumer group (PT-03 instances, PT-04 partitions): the orders
service's own composition root (services/orders/bootstrap.main: its pool, projector and
partition assignment) with only its subscription changed, to consumer group BENCH_GROUP of
the throwaway topic BENCH_TOPIC, so that the stack's real ``orders`` group and ``orders.v1``
are left alone. Started by loadtest/suite/events.py (``CONSUMER_ARGV``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from services import runtime
from services.orders import bootstrap


async def main(stop: asyncio.Event) -> None:
    group, topic = os.environ["BENCH_GROUP"], os.environ["BENCH_TOPIC"]

    async def consume(
        settings: Any, _name: str, _topics: Sequence[str], *args: Any, **kwargs: Any
    ) -> None:
        await runtime.consume(settings, group, [topic], *args, **kwargs)

    setattr(bootstrap, "consume", consume)  # noqa: B010 (mypy: not exported there)
    await bootstrap.main(stop)
