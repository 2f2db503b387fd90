"""Outbox relay: moves events from every sale's Redis outbox stream to Kafka, at least once.

An entry leaves its stream (XACK + XDEL) only after Kafka acknowledged it with acks=all, so a
crash anywhere re-sends, never loses. Any number of relays can run: each reads new entries
as its own consumer of one group, and every ``claim_every_s`` each takes over, page by page
over every stream, the entries another consumer has held unacknowledged for
``claim_idle_ms`` (a relay that died, or hangs), then deletes consumers that are idle and
hold nothing. Consumers dedupe by event id, so a slow relay and its successor both sending
an entry is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from nexuscart import observability
from nexuscart.adapters.flash_sales import FlashSaleStore, OutboxEntry
from nexuscart.events import ORDERS_TOPIC

log = logging.getLogger("nexuscart.relay")


class OutboxRelay:
    def __init__(
        self,
        store: FlashSaleStore,
        producer: AIOKafkaProducer,
        consumer: str,
        topic: str = ORDERS_TOPIC,
        batch: int = 2000,
        block_ms: int = 200,
        claim_idle_ms: int = 5_000,
        claim_every_s: float = 2.0,
    ):
        self.store = store
        self.producer = producer
        self.consumer = consumer
        self.topic = topic
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s
        self.streams: set[bytes] = set()
        self._recovered = True  # a new consumer name has nothing pending
        self._next_claim = 0.0
        self._relayed = observability.OUTBOX_RELAYED.labels("flash_sales")

    async def _refresh_streams(self) -> None:
        current = await self.store.outbox_streams()
        for stream in current - self.streams:
            await self.store.join_outbox(stream)
        self.streams = current

    async def run_once(self) -> int:
        """Relay one batch (and, when due, take over stale entries); return how many
        entries left the outbox."""
        await self._refresh_streams()
        if not self.streams:
            await asyncio.sleep(self.block_ms / 1000)
            return 0
        n = 0
        if not self._recovered:
            n += await self._own_pending()
        if time.monotonic() >= self._next_claim:
            n += await self.take_over()
            self._next_claim = time.monotonic() + self.claim_every_s
        entries = await self.store.read_outbox(
            self.consumer, self.streams, self.batch, block_ms=self.block_ms
        )
        return n + await self._publish(entries)

    async def _own_pending(self) -> int:
        """Re-send what this relay was given but did not acknowledge (after a failed batch)."""
        n = 0
        while entries := await self.store.read_outbox(
            self.consumer, self.streams, self.batch, own_pending=True
        ):
            n += await self._publish(entries)
        self._recovered = True
        return n

    async def take_over(self) -> int:
        """Claim every entry held too long by another consumer, on every stream, every page;
        then delete the consumers that hold nothing and have been idle as long. One round
        trip finds the streams where another consumer holds anything; only those are claimed."""
        n = 0
        consumers = await self.store.outbox_consumers_many(sorted(self.streams))
        for stream, cs in consumers.items():
            others = [c for c in cs if c.name != self.consumer]
            if any(c.pending for c in others):
                async for page in self.store.claim_outbox(
                    self.consumer, stream, self.claim_idle_ms, self.batch
                ):
                    n += await self._publish(page)
            for name in await self.store.drop_idle_outbox_consumers(
                stream, cs, self.consumer, self.claim_idle_ms
            ):
                log.info("dropped idle consumer %s of %r", name, stream)
        if n:
            log.info("took over %d outbox entries", n)
        return n

    async def _publish(self, entries: Sequence[OutboxEntry]) -> int:
        sends, spans = [], []
        for e in entries:
            if e.value is None:
                continue  # deleted meanwhile: relayed already, only acknowledge
            headers = None
            if e.traceparent is not None:  # a traced purchase: its trace goes on in Kafka
                span = observability.TRACING.start("outbox_relay.publish", e.traceparent)
                spans.append(span)
                tp = observability.traceparent(span).encode() if span else e.traceparent
                headers = [("traceparent", tp)]
            sends.append(
                await self.producer.send(self.topic, value=e.value, key=e.key, headers=headers)
            )
        if sends:
            await asyncio.gather(*sends)  # every record acknowledged by Kafka (acks=all)
        for span in spans:
            if span is not None:
                span.end()
        await self.store.ack_outbox(entries)
        self._relayed.inc(len(entries))
        return len(entries)

    async def measure(self) -> None:
        """Set the backlog and oldest-entry-age gauges of the flash-sale outboxes."""
        waiting, oldest_ms = await self.store.outbox_backlog(await self.store.outbox_streams())
        observability.OUTBOX_BACKLOG.labels("flash_sales").set(waiting)
        age = 0.0 if oldest_ms is None else max(0.0, time.time() - oldest_ms / 1000)
        observability.OUTBOX_AGE.labels("flash_sales").set(age)

    async def run(self, stop: asyncio.Event) -> None:
        log.info("relaying as consumer %s", self.consumer)
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                observability.OUTBOX_FAILURES.labels("flash_sales").inc()
                log.exception("relay batch failed; retrying")
                self._recovered = False  # re-read the pending list: nothing is skipped
                await asyncio.sleep(0.5)
