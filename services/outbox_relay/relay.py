"""Outbox relay: moves events from every sale's Redis outbox stream to Kafka, at least once.

An entry leaves its stream (XACK + XDEL) only after Kafka acknowledged it with acks=all, so a
crash anywhere re-sends, never loses. On start the relay first re-reads what it had been
given but not acknowledged (its pending list), and takes over entries of a relay that died
(XAUTOCLAIM after ``claim_idle_ms``). Consumers dedupe by event id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from redis.exceptions import ResponseError

from nexuscart.adapters.flash_sales import STREAMS_INDEX
from nexuscart.events import ORDERS_TOPIC

log = logging.getLogger("nexuscart.relay")
GROUP = "relay"


class OutboxRelay:
    def __init__(
        self,
        client: aioredis.Redis,
        producer: AIOKafkaProducer,
        consumer: str,
        topic: str = ORDERS_TOPIC,
        batch: int = 2000,
        block_ms: int = 200,
        claim_idle_ms: int = 30_000,
    ):
        self.client = client
        self.producer = producer
        self.consumer = consumer
        self.topic = topic
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.streams: set[bytes] = set()
        self.relayed = 0
        self._recovered = False

    async def _refresh_streams(self) -> None:
        current: set[bytes] = set(await self.client.smembers(STREAMS_INDEX))  # type: ignore[arg-type]
        for stream in current - self.streams:
            try:
                await self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self.streams = current

    async def run_once(self) -> int:
        """Relay one batch; return how many entries left the outbox."""
        await self._refresh_streams()
        if not self.streams:
            await asyncio.sleep(self.block_ms / 1000)
            return 0
        entries: Any
        if not self._recovered:
            entries = await self._pending_and_claimed()
            self._recovered = True
        else:
            entries = await self.client.xreadgroup(
                GROUP,
                self.consumer,
                dict.fromkeys(self.streams, ">"),
                count=self.batch,
                block=self.block_ms,
            )
        return await self._publish(entries or [])

    async def _pending_and_claimed(self) -> list[Any]:
        out: list[Any] = []
        for stream in self.streams:
            mine = await self.client.xreadgroup(GROUP, self.consumer, {stream: "0"}, count=100_000)
            out.extend(mine or [])
            claimed = await self.client.xautoclaim(
                stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=100_000
            )
            if claimed[1]:
                out.append([stream, claimed[1]])
        return out

    async def _publish(self, entries: list[Any]) -> int:
        sends = []
        acks: dict[bytes, list[bytes]] = {}
        for stream, items in entries:
            for entry_id, fields in items:
                if not fields:  # deleted meanwhile (already relayed by another relay)
                    acks.setdefault(stream, []).append(entry_id)
                    continue
                sends.append(
                    await self.producer.send(self.topic, value=fields[b"e"], key=fields[b"k"])
                )
                acks.setdefault(stream, []).append(entry_id)
        if sends:
            await asyncio.gather(*sends)  # every record acknowledged by Kafka (acks=all)
        if not acks:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for stream, ids in acks.items():
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
        await pipe.execute()
        n = sum(len(v) for v in acks.values())
        self.relayed += n
        return n

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("relay batch failed; retrying")
                self._recovered = False  # re-read the pending list: nothing is skipped
                await asyncio.sleep(0.5)
