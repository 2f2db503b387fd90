"""Users outbox relay: moves the rows of PostgreSQL's ``users_outbox`` (UserRegistered,
written in the transaction that created the user) to Kafka, at least once.

A row is deleted only after Kafka acknowledged its record (acks=all, idempotent
producer), so a crash anywhere re-sends, never loses; the record's key is the user id
(ShardPartitioner) and its envelope id the event id, by which consumers drop a repeat.
One relay process polls at a time in the usual deployment; two would only send some
records twice (same event id).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiokafka import AIOKafkaProducer

from nexuscart.adapters.users_repo import UsersRepo
from services.runtime import sleep_or_stop

log = logging.getLogger("nexuscart.relay.users")

BATCH: Final = 500
IDLE_S: Final = 0.2  # poll interval while the outbox is empty: the event's added delay


class UsersOutboxRelay:
    def __init__(
        self,
        repo: UsersRepo,
        producer: AIOKafkaProducer,
        batch: int = BATCH,
        idle_s: float = IDLE_S,
    ):
        self.repo = repo
        self.producer = producer
        self.batch = batch
        self.idle_s = idle_s

    async def run_once(self) -> int:
        """Relay one batch; return how many rows left the outbox."""
        rows = await self.repo.outbox_batch(self.batch)
        if not rows:
            return 0
        sends = [
            await self.producer.send(r.topic, value=r.payload, key=str(r.user_id).encode())
            for r in rows
        ]
        await asyncio.gather(*sends)  # every record acknowledged by Kafka (acks=all)
        await self.repo.outbox_delete(rows)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                n = await self.run_once()
            except Exception:
                log.exception("users outbox batch failed; retrying")
                await sleep_or_stop(stop, 0.5)
                continue
            if n < self.batch:
                await sleep_or_stop(stop, self.idle_s)
