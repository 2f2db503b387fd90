"""The payments inbox: verified provider webhooks, recorded by the edge in a Redis stream
and applied to PostgreSQL by the payments service, which owns the stream (ADR 0021).

The edge answers the provider 2xx once ``add`` returned: Redis runs with ``appendfsync
always``, so the entry is on disk (ADR 0003). The service reads entries as one consumer of
the ``payments`` group, applies a batch in one transaction, then acknowledges and deletes
them (``done``); an entry it cannot decode or the database refuses goes to the dead-letter
stream (``dead``). Entries another consumer was given and left unacknowledged (a service
that died) are taken over with ``claim``, and consumers idle and empty are deleted.
Script: lua/pay_inbox_add.lua; the group's reads, claims and acknowledgements:
adapters/stream_groups.py, as the flash-sale outbox's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Final, NamedTuple

import msgspec
import redis.asyncio as aioredis

from nexuscart.adapters.payments_repo import Change
from nexuscart.adapters.redis_conn import Script
from nexuscart.adapters.redis_pipe import Commands, RedisPipe
from nexuscart.adapters.stream_groups import Item, StreamGroup

STREAM: Final = b"payments:webhooks:v1"
GROUP: Final = "payments"
# the most entries waiting to be applied before the edge refuses new ones (503): hours of a
# busy store's webhooks, a bound on Redis memory (~300 bytes each) while the service is down
MAX_BACKLOG: Final = 1_000_000
ADD: Final = Script("pay_inbox_add")

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Change)


class InboxFull(Exception):
    """The inbox holds ``MAX_BACKLOG`` entries: nothing was recorded."""


class InboxEntry(NamedTuple):
    entry_id: bytes
    raw: bytes
    change: Change | None  # None: the entry does not decode (a poison entry)


def _entry(entry_id: bytes, fields: dict[bytes, bytes] | None) -> InboxEntry:
    raw = (fields or {}).get(b"c", b"")
    try:
        change: Change | None = _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        change = None
    return InboxEntry(entry_id, raw, change)


def _entries(items: Iterable[Item]) -> list[InboxEntry]:
    return [_entry(eid, fields) for eid, fields in items]


class WebhookInbox:
    """``pipe``: the edge's lean connection (one write per event-loop tick for every
    webhook in flight); the service and tests use the pooled ``client`` alone."""

    def __init__(
        self,
        client: aioredis.Redis,
        pipe: RedisPipe | None = None,
        stream: bytes = STREAM,
        max_backlog: int = MAX_BACKLOG,
    ):
        self.client = client
        self.commands = Commands(client, pipe)
        self.stream = stream
        self.dead_stream = stream + b":dead"
        self.max_backlog = max_backlog
        self.group = StreamGroup(client, GROUP)

    async def add(self, change: Change) -> None:
        """Record ``change`` durably; raises InboxFull (nothing recorded) or a Redis error
        (recorded or not: the provider redelivers, the service deduplicates)."""
        recorded = await self.commands.script(
            ADD, [self.stream], [self.max_backlog, _encoder.encode(change)]
        )
        if not recorded:
            raise InboxFull

    async def join(self) -> None:
        """Create the group (from the stream's first entry); already there is fine."""
        await self.group.join(self.stream)

    async def read(
        self, consumer: str, count: int, block_ms: int | None = None, own_pending: bool = False
    ) -> list[InboxEntry]:
        """New entries for ``consumer`` (waiting up to ``block_ms``), or with ``own_pending``
        those it was given before and has not acknowledged."""
        got = await self.group.read(consumer, [self.stream], count, block_ms, own_pending)
        return [e for _, items in got for e in _entries(items)]

    async def claim(
        self, consumer: str, min_idle_ms: int, count: int
    ) -> AsyncIterator[list[InboxEntry]]:
        """Take over, page by page, every entry another consumer was given and has not
        acknowledged for ``min_idle_ms`` (a service that died or hangs)."""
        async for items in self.group.claim(consumer, self.stream, min_idle_ms, count):
            yield _entries(items)

    async def drop_idle_consumers(self, keep: str, min_idle_ms: int) -> list[str]:
        """Delete the group's consumers (but ``keep``) idle for ``min_idle_ms`` that hold
        nothing; -> their names."""
        consumers = (await self.group.consumers([self.stream]))[self.stream]
        return await self.group.drop_idle(self.stream, consumers, keep, min_idle_ms)

    async def done(self, entry_ids: Sequence[bytes]) -> None:
        """Applied (committed): acknowledge and delete, in one round trip."""
        await self.group.ack({self.stream: entry_ids})

    async def dead(self, entries: Sequence[tuple[InboxEntry, str]]) -> None:
        """Move entries that can never apply to the dead-letter stream, with the reason, and
        out of the inbox: all in one transaction, so none is lost or left behind."""
        if entries:
            pipe = self.client.pipeline(transaction=True)
            for e, reason in entries:
                pipe.xadd(self.dead_stream, {"c": e.raw, "entry": e.entry_id, "reason": reason})
            ids = [e.entry_id for e, _ in entries]
            pipe.xack(self.stream, GROUP, *ids)
            pipe.xdel(self.stream, *ids)
            await pipe.execute()

    async def backlog(self) -> int:
        """Entries recorded and not applied yet."""
        return int(await self.client.xlen(self.stream))
