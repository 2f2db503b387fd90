"""Relay of an outbox table in PostgreSQL to Kafka, at least once: the users outbox
(UserRegistered) and the catalog outbox (product and stock events) each run one.

A row is deleted only after Kafka acknowledged its record (acks=all, idempotent producer),
so a crash anywhere re-sends, never loses; the record's key is the row's distribution key
(user id, product id: ShardPartitioner puts it on its shard's partition) and its envelope
id the event id, by which consumers drop a repeat. One relay process polls at a time in the
usual deployment; two would only send some records twice (same event id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaProducer

from nexuscart import observability
from nexuscart.adapters.postgres import query
from services.runtime import sleep_or_stop

log = logging.getLogger("nexuscart.relay.pg")

BATCH: Final = 500
IDLE_S: Final = 0.2  # poll interval while the outbox is empty: the event's added delay
# poll interval after a batch that was not full: events still arriving wait this long, not
# IDLE_S, and a poll still takes a few milliseconds' worth of rows, not one at a time
BUSY_S: Final = 0.02


class Row(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...


R = TypeVar("R", bound=Row)


class Outbox(Protocol[R]):
    async def outbox_batch(self, limit: int) -> list[R]: ...
    async def outbox_delete(self, rows: Sequence[R]) -> None: ...


async def measure(pool: Any) -> None:
    """Set the backlog and oldest-entry-age gauges of every PostgreSQL outbox."""
    for row in await pool.fetch(query("outbox_backlog")):
        observability.OUTBOX_BACKLOG.labels(row["outbox"]).set(row["waiting"])
        observability.OUTBOX_AGE.labels(row["outbox"]).set(max(0.0, row["age_s"] or 0.0))


class PgOutboxRelay(Generic[R]):
    def __init__(
        self,
        outbox: Outbox[R],
        producer: AIOKafkaProducer,
        key: Callable[[R], int],
        name: str,
        batch: int = BATCH,
        idle_s: float = IDLE_S,
    ):
        self.outbox = outbox
        self.producer = producer
        self.key = key
        self.name = name
        self.batch = batch
        self.idle_s = idle_s

    async def run_once(self) -> int:
        """Relay one batch; return how many rows left the outbox."""
        rows = await self.outbox.outbox_batch(self.batch)
        if not rows:
            return 0
        await self.before_send(rows)
        sends = [
            await self.producer.send(r.topic, value=r.payload, key=str(self.key(r)).encode())
            for r in rows
        ]
        await asyncio.gather(*sends)  # every record acknowledged by Kafka (acks=all)
        await self.outbox.outbox_delete(rows)
        observability.OUTBOX_RELAYED.labels(self.name).inc(len(rows))
        return len(rows)

    async def before_send(self, rows: Sequence[R]) -> None:
        """What else the rows must cause, at least once (a failure here leaves them for the
        next round, before anything was sent); nothing by default."""

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                n = await self.run_once()
            except Exception:
                observability.OUTBOX_FAILURES.labels(self.name).inc()
                log.exception("%s outbox batch failed; retrying", self.name)
                await sleep_or_stop(stop, 0.5)
                continue
            if n < self.batch:
                await sleep_or_stop(stop, self.idle_s if n == 0 else min(BUSY_S, self.idle_s))
