"""A Redis stream consumer group, read at least once: what the flash-sale outbox (read by the
relay) and the payments webhook inbox (read by the payments service) both do. Entries leave
a stream only when their reader acknowledges them (``ack``: XACK + XDEL), entries a dead
reader held are taken over (``claim``), and readers that are gone are deleted
(``drop_consumer``, lua/outbox_drop_consumer.lua, atomic with "holds nothing").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import redis.asyncio as aioredis

from nexuscart.adapters.redis_conn import Script

DROP_CONSUMER: Final = Script("outbox_drop_consumer")

# (entry id, fields); fields are None for an entry deleted since it was delivered
Item = tuple[bytes, dict[bytes, bytes] | None]


class StreamConsumer(NamedTuple):
    name: str
    pending: int
    idle_ms: int


class StreamGroup:
    def __init__(self, client: aioredis.Redis, group: str):
        self.client = client
        self.group = group
        self._drop = DROP_CONSUMER.for_client(client)

    async def join(self, stream: bytes) -> None:
        """Create the group on ``stream`` (from its first entry); already there is fine."""
        try:
            await self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(
        self,
        consumer: str,
        streams: Iterable[bytes],
        count: int,
        block_ms: int | None = None,
        own_pending: bool = False,
    ) -> list[tuple[bytes, list[Item]]]:
        """New entries for ``consumer`` (waiting up to ``block_ms``), or with ``own_pending``
        the entries it was given earlier and has not acknowledged; per stream."""
        got: Any = await self.client.xreadgroup(
            self.group,
            consumer,
            dict.fromkeys(streams, "0" if own_pending else ">"),
            count=count,
            block=None if own_pending else block_ms,
        )
        return [(stream, items) for stream, items in got or []]

    async def claim(
        self, consumer: str, stream: bytes, min_idle_ms: int, count: int
    ) -> AsyncIterator[list[Item]]:
        """Take over, page by page, every entry of ``stream`` that another consumer was
        given and has not acknowledged for ``min_idle_ms`` (a reader that died or hangs)."""
        cursor: bytes | str = "0-0"
        while True:
            nxt, items, *_ = await self.client.xautoclaim(
                stream, self.group, consumer, min_idle_ms, cursor, count=count
            )
            if items:
                yield items
            if nxt in (b"0-0", "0-0"):
                return
            cursor = nxt

    async def ack(self, ids: Mapping[bytes, Sequence[bytes]]) -> None:
        """Done with these entries (per stream): acknowledge and delete, one round trip,
        both or neither (MULTI: an entry acknowledged but left behind would stay in the
        stream, read by no one)."""
        pipe = self.client.pipeline(transaction=True)
        for stream, entry_ids in ids.items():
            if entry_ids:
                pipe.xack(stream, self.group, *entry_ids)
                pipe.xdel(stream, *entry_ids)
        if len(pipe):
            await pipe.execute()

    async def consumers(self, streams: Iterable[bytes]) -> dict[bytes, list[StreamConsumer]]:
        """The consumers of each stream, with what each holds, in one round trip."""
        names = list(streams)
        pipe = self.client.pipeline(transaction=False)
        for stream in names:
            pipe.xinfo_consumers(stream, self.group)
        replies = await pipe.execute(raise_on_error=False)
        out: dict[bytes, list[StreamConsumer]] = {}
        for stream, rows in zip(names, replies, strict=True):
            if isinstance(rows, aioredis.ResponseError):
                if "no such key" in str(rows) or "NOGROUP" in str(rows):
                    out[stream] = []  # the group is not there (yet)
                    continue
                raise rows
            out[stream] = [
                StreamConsumer(
                    name=r["name"].decode() if isinstance(r["name"], bytes) else r["name"],
                    pending=int(r["pending"]),
                    idle_ms=int(r["idle"]),
                )
                for r in rows
            ]
        return out

    async def drop_consumer(self, stream: bytes, consumer: str) -> bool:
        """Delete ``consumer`` from the group if (checked atomically) it holds no entries."""
        return bool(await self._drop(keys=[stream], args=[self.group, consumer]))

    async def drop_idle(
        self, stream: bytes, consumers: Iterable[StreamConsumer], keep: str, min_idle_ms: int
    ) -> list[str]:
        """Delete the ``consumers`` of ``stream`` (but ``keep``) idle for ``min_idle_ms``
        that hold nothing: each reader's start takes a new name, and the group would only
        grow. What they hold is checked at the delete, so ``consumers`` may be older (read
        before a claim took their entries). -> the names deleted."""
        return [
            c.name
            for c in consumers
            if c.name != keep
            and c.idle_ms >= min_idle_ms
            and await self.drop_consumer(stream, c.name)
        ]
