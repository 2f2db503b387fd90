"""Flash-sale state in Redis: stock, holds, buyers, outbox streams, via the lua/fs_*.lua scripts.

This module is the one owner of the Redis layout: key names, hash fields, stream fields and
script reply shapes live here (and in lua/); everyone else uses the typed methods of
``FlashSaleStore``. Every key of one sale shares the hash tag ``{fs:<id>}``, so each script
touches one Redis Cluster slot. Purchases from one event-loop tick are coalesced: one EVALSHA
per sale decides the whole batch, and the batches of all sales share one pipelined round
trip. One round trip per request is what caps a worker (ADR 0005); one script call per
purchase is what then caps Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Final, NamedTuple

import msgspec
import redis.asyncio as aioredis

from nexuscart.adapters.redis_conn import Script
from nexuscart.adapters.redis_pipe import Commands, RedisPipe, ReplyError, TickCoalescer
from nexuscart.adapters.stream_groups import StreamConsumer, StreamGroup
from nexuscart.domain.flash_sale import MAX_SALE_ID, Sale

STREAMS_INDEX: Final = b"fs:streams"  # set of every sale's outbox stream key
SALES_INDEX: Final = b"fs:sales"  # set of every sale id known to Redis
OUTBOX_GROUP: Final = "relay"  # the consumer group every relay reads the outboxes in

PURCHASE: Final = Script("fs_purchase")
RELEASE: Final = Script("fs_release")
CONFIRM: Final = Script("fs_confirm")
UPSERT: Final = Script("fs_upsert")


class SaleKeys:
    """The Redis keys of one sale (all in one cluster slot)."""

    __slots__ = ("buyers", "expiry", "holds", "meta", "outbox", "prefix", "sold", "stock")

    def __init__(self, sale_id: int):
        p = f"{{fs:{sale_id}}}"
        self.prefix = p
        self.meta = f"{p}:meta".encode()
        self.stock = f"{p}:stock".encode()
        self.buyers = f"{p}:buyers".encode()
        self.holds = f"{p}:holds".encode()
        self.expiry = f"{p}:expiry".encode()
        self.outbox = f"{p}:outbox".encode()
        self.sold = f"{p}:sold".encode()

    def base(self) -> list[bytes]:
        return [self.meta, self.stock, self.buyers, self.holds, self.expiry, self.outbox]

    def idem(self, user_id: int, key: str) -> bytes:
        return f"{self.prefix}:idem:{user_id}:{key}".encode()


class StockConflict(Exception):
    """Units cannot go below what is already held or sold."""


class PurchaseReply(NamedTuple):
    """fs_purchase.lua's answer to one purchase. ``code`` is a domain ``Outcome`` value;
    ``order_id`` and ``expires_at_ms`` are set for OK and REPLAY; ``available_after`` is the
    units left after this purchase (-1 on REPLAY: not looked up)."""

    code: int
    order_id: int
    expires_at_ms: int
    available_after: int


class StockState(NamedTuple):
    """What the sold-out watch needs: units left, and the purchase sequence (it moves on
    every successful purchase, so a changed ``seq`` means new buyers)."""

    available: int
    seq: int


class SaleSnapshot(msgspec.Struct, frozen=True):
    """A sale as Redis has it, read in one round trip (one MULTI: a consistent view)."""

    sale: Sale
    available: int
    held: int
    sold: int
    seq: int


class OutboxEntry(NamedTuple):
    """One outbox stream entry: the Kafka message ``key`` and ``value`` (the event's JSON).
    Both are None when the entry was deleted meanwhile (another relay relayed it): it only
    needs acknowledging."""

    stream: bytes
    entry_id: bytes
    key: bytes | None
    value: bytes | None
    traceparent: bytes | None = None  # W3C trace context of a traced purchase


OutboxConsumer = StreamConsumer


def _meta_to_sale(meta: dict[bytes, bytes]) -> Sale:
    """The meta hash as fs_upsert.lua writes it."""
    return Sale(
        sale_id=int(meta[b"sale_id"]),
        sku=meta[b"sku"].decode(),
        units=int(meta[b"units"]),
        price_cents=int(meta[b"price"]),
        currency=meta[b"currency"].decode(),
        per_user_limit=int(meta[b"limit"]),
        starts_at_ms=int(meta[b"starts_ms"]),
        ends_at_ms=int(meta[b"ends_ms"]),
        hold_ttl_s=int(meta[b"hold_ttl_ms"]) // 1000,
        ended=meta[b"ended"] == b"1",
    )


def _entries(stream: bytes, items: Iterable[Any]) -> list[OutboxEntry]:
    out = []
    for entry_id, fields in items:
        if fields:
            out.append(OutboxEntry(stream, entry_id, fields[b"k"], fields[b"e"], fields.get(b"tp")))
        else:
            out.append(OutboxEntry(stream, entry_id, None, None))
    return out


class PurchaseBatcher(TickCoalescer[list[Any], PurchaseReply]):
    """Coalesces purchase calls made in one loop tick: one script call per sale, one round trip."""

    def __init__(self, pipe: RedisPipe, max_batch: int = 512):
        super().__init__(max_batch)
        self.pipe = pipe
        self.round_trips = 0

    async def _run(self, batch: list[tuple[list[Any], asyncio.Future[PurchaseReply]]]) -> None:
        self.round_trips += 1
        results = await self._execute([kv for kv, _ in batch])
        redo = [i for i, r in enumerate(results) if _is_noscript(r)]
        if redo:
            # Redis restarted and lost its script cache: load once, redo those calls.
            # A NOSCRIPT call did not run, so redoing it cannot apply twice.
            await self.pipe.execute([("SCRIPT", "LOAD", PURCHASE.source)])
            again = await self._execute([batch[i][0] for i in redo])
            for i, r in zip(redo, again, strict=True):
                results[i] = r
        make = PurchaseReply._make
        for (_, fut), res in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(make(res))

    async def _execute(self, calls: list[list[Any]]) -> list[Any]:
        """One EVALSHA per sale for the whole batch; a reply (or error) per call, in order.

        Each call is ``purchase()``'s list: 6 sale keys, the idempotency key, then user id,
        quantity, event id, occurred_at, traceparent, and the idempotency TTL
        (fs_purchase.lua's layout).
        """
        groups: dict[bytes, list[int]] = {}
        for i, kv in enumerate(calls):
            groups.setdefault(kv[0], []).append(i)
        commands = []
        for idx in groups.values():
            first = calls[idx[0]]
            keys = [*first[:6], *(calls[i][6] for i in idx)]
            args = [first[12]]
            for i in idx:
                args.extend(calls[i][7:12])
            commands.append(("EVALSHA", PURCHASE.sha, len(keys), *keys, *args))
        replies = await self.pipe.execute(commands)
        results: list[Any] = [None] * len(calls)
        for idx, reply in zip(groups.values(), replies, strict=True):
            for j, i in enumerate(idx):
                results[i] = reply if isinstance(reply, Exception) else reply[j]
        return results


def _is_noscript(reply: object) -> bool:
    return isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT")


class FlashSaleStore:
    """``pipe`` (the lean connection, same Redis as ``client``) carries ``purchase`` (and,
    when given, ``confirm`` and ``release``: the inventory's concurrent calls go out a tick at
    a time); without it, everything runs on the pooled client."""

    def __init__(
        self, client: aioredis.Redis, pipe: RedisPipe | None = None, idem_ttl_s: int = 86_400
    ):
        self.client = client
        self.idem_ttl = str(idem_ttl_s).encode()
        self.batcher = PurchaseBatcher(pipe) if pipe is not None else None
        self._keys: dict[int, SaleKeys] = {}
        self.commands = Commands(client, pipe)
        self._upsert = UPSERT.for_client(client)
        self._relay = StreamGroup(client, OUTBOX_GROUP)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.pipe.close()

    def keys(self, sale_id: int) -> SaleKeys:
        k = self._keys.get(sale_id)
        if k is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            k = self._keys[sale_id] = SaleKeys(sale_id)
        return k

    # -- sales and stock -------------------------------------------------------------------

    async def upsert(self, sale: Sale) -> tuple[int, int, int, int]:
        """Create or update a sale; returns (units, available, held, sold) after the change."""
        if not 1 <= sale.sale_id <= MAX_SALE_ID:
            raise ValueError(f"sale id outside 1..{MAX_SALE_ID} (order ids would collide)")
        k = self.keys(sale.sale_id)
        # The indexes first, as plain commands (they live in other cluster slots than the
        # sale): listed but not yet written is harmless (an empty stream, a sale that is not
        # found); written but not listed would leave its events unrelayed.
        index = self.client.pipeline(transaction=False)
        index.sadd(SALES_INDEX, sale.sale_id)
        index.sadd(STREAMS_INDEX, k.outbox)
        await index.execute()
        res = await self._upsert(
            [k.meta, k.stock],
            [
                sale.sale_id,
                sale.units,
                sale.starts_at_ms,
                sale.ends_at_ms,
                sale.per_user_limit,
                sale.price_cents,
                sale.currency,
                sale.sku,
                sale.hold_ttl_s * 1000,
                "1" if sale.ended else "0",
            ],
        )
        if int(res[0]) < 0:
            raise StockConflict(f"units below held + sold ({int(res[2]) + int(res[3])})")
        return int(res[0]), int(res[1]), int(res[2]), int(res[3])

    async def snapshot(self, sale_id: int) -> SaleSnapshot | None:
        """The sale and its counters in one round trip; None for a sale Redis does not know."""
        k = self.keys(sale_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(k.meta)
        pipe.hmget(k.stock, ["available", "held", "sold", "seq"])
        meta, (avail, held, sold, seq) = await pipe.execute()
        if not meta:
            return None
        return SaleSnapshot(
            sale=_meta_to_sale(meta),
            available=int(avail or 0),
            held=int(held or 0),
            sold=int(sold or 0),
            seq=int(seq or 0),
        )

    async def stock(self, sale_id: int) -> tuple[int, int, int] | None:
        """(available, held, sold), or None for a sale Redis does not know."""
        vals = await self.client.hmget(self.keys(sale_id).stock, ["available", "held", "sold"])
        if vals[0] is None:
            return None
        return int(vals[0]), int(vals[1] or 0), int(vals[2] or 0)

    async def stock_states(self, sale_ids: Sequence[int]) -> list[StockState | None]:
        """Units left and purchase sequence of many sales in one round trip (None: unknown)."""
        pipe = self.client.pipeline(transaction=False)
        for sid in sale_ids:
            pipe.hmget(self.keys(sid).stock, ["available", "seq"])
        rows = await pipe.execute()
        return [
            None if avail is None else StockState(int(avail), int(seq or 0)) for avail, seq in rows
        ]

    async def buyers(self, sale_id: int) -> set[int]:
        raw = await self.client.hkeys(self.keys(sale_id).buyers)
        return {int(x) for x in raw}

    async def sale_ids(self) -> list[int]:
        raw = await self.client.smembers(SALES_INDEX)
        return sorted(int(x) for x in raw)

    async def totals(self, sale_id: int) -> dict[str, int]:
        """Everything conservation needs: units, counters, and sums over holds/sold entries."""
        k = self.keys(sale_id)
        pipe = self.client.pipeline(transaction=True)  # one consistent snapshot (MULTI)
        pipe.hget(k.meta, "units")
        pipe.hmget(k.stock, ["available", "held", "sold"])
        pipe.hvals(k.holds)
        pipe.hvals(k.sold)
        units, (avail, held, sold), holds, solds = await pipe.execute()
        return {
            "units": int(units or 0),
            "available": int(avail or 0),
            "held": int(held or 0),
            "sold": int(sold or 0),
            "held_entries": sum(int(v.split(b":")[1]) for v in holds),
            "sold_entries": sum(int(v.split(b":")[1]) for v in solds),
        }

    # -- purchases and holds ---------------------------------------------------------------

    def purchase(
        self,
        sale_id: int,
        user_id: int,
        quantity: int,
        idem_key: str,
        event_id: str,
        occurred_at: str,
        traceparent: str = "",
    ) -> asyncio.Future[PurchaseReply]:
        """Decide one purchase (batched with the others of this loop tick); a traced one
        passes its ``traceparent`` for the outbox entry."""
        if self.batcher is None:
            raise RuntimeError("FlashSaleStore.purchase needs the store built with a RedisPipe")
        k = self.keys(sale_id)
        return self.batcher.submit(
            [
                k.meta,
                k.stock,
                k.buyers,
                k.holds,
                k.expiry,
                k.outbox,
                k.idem(user_id, idem_key),
                user_id,
                quantity,
                event_id,
                occurred_at,
                traceparent,
                self.idem_ttl,
            ]
        )

    async def release(
        self,
        sale_id: int,
        order_id: int,
        reason: str,
        event_id: str,
        occurred_at: str,
        only_if_due: bool,
    ) -> int:
        """Units released (0: no such hold, or not yet due with ``only_if_due``)."""
        k = self.keys(sale_id)
        args = [order_id, reason, event_id, occurred_at, "1" if only_if_due else "0"]
        return int(await self.commands.script(RELEASE, k.base(), args))

    async def confirm(self, sale_id: int, order_id: int, event_id: str, occurred_at: str) -> int:
        """Units sold by this order, or -1 when the hold is gone (released or expired)."""
        k = self.keys(sale_id)
        args = [order_id, event_id, occurred_at]
        return int(await self.commands.script(CONFIRM, [*k.base(), k.sold], args))

    async def due_holds(self, sale_id: int, now_ms: int, limit: int = 500) -> list[int]:
        raw: list[bytes] = await self.client.zrangebyscore(  # type: ignore[assignment]
            self.keys(sale_id).expiry, "-inf", now_ms, start=0, num=limit
        )
        return [int(x) for x in raw]

    # -- the outbox (read by services/outbox_relay through the OUTBOX_GROUP group) ----------

    async def outbox_streams(self) -> set[bytes]:
        """Every sale's outbox stream; each joins the relay group on first sight."""
        return set(await self.client.smembers(STREAMS_INDEX))  # type: ignore[arg-type]

    async def outbox_backlog(self, streams: Iterable[bytes]) -> tuple[int, int | None]:
        """Entries waiting in ``streams`` (relayed ones are deleted) and the Unix time in ms
        of the oldest (its entry id's time part), None when all are empty; one round trip."""
        names = list(streams)
        pipe = self.client.pipeline(transaction=False)
        for stream in names:
            pipe.xlen(stream)
            pipe.xrange(stream, count=1)
        replies = await pipe.execute()
        total, oldest = 0, None
        for length, first in zip(replies[::2], replies[1::2], strict=True):
            total += int(length)
            if first:
                ms = int(first[0][0].split(b"-", 1)[0])
                oldest = ms if oldest is None else min(oldest, ms)
        return total, oldest

    async def join_outbox(self, stream: bytes) -> None:
        """Create the relay group on ``stream`` (from its first entry); already there is fine."""
        await self._relay.join(stream)

    async def read_outbox(
        self,
        consumer: str,
        streams: Iterable[bytes],
        count: int,
        block_ms: int | None = None,
        own_pending: bool = False,
    ) -> list[OutboxEntry]:
        """New entries for ``consumer`` (waiting up to ``block_ms``), or with ``own_pending``
        the entries it was given earlier and has not acknowledged."""
        got = await self._relay.read(consumer, streams, count, block_ms, own_pending)
        return [e for stream, items in got for e in _entries(stream, items)]

    async def claim_outbox(
        self, consumer: str, stream: bytes, min_idle_ms: int, count: int
    ) -> AsyncIterator[list[OutboxEntry]]:
        """Takes over, page by page, every entry of ``stream`` that another consumer was
        given and has not acknowledged for ``min_idle_ms`` (a relay that died or hangs)."""
        async for items in self._relay.claim(consumer, stream, min_idle_ms, count):
            yield _entries(stream, items)

    async def ack_outbox(self, entries: Sequence[OutboxEntry]) -> None:
        """The entries are in Kafka: acknowledge and delete them, in one round trip."""
        by_stream: dict[bytes, list[bytes]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.entry_id)
        await self._relay.ack(by_stream)

    async def outbox_consumers(self, stream: bytes) -> list[OutboxConsumer]:
        """The relays reading ``stream`` (none before the group exists)."""
        return (await self.outbox_consumers_many([stream]))[stream]

    async def outbox_consumers_many(
        self, streams: Iterable[bytes]
    ) -> dict[bytes, list[OutboxConsumer]]:
        """The consumers of many streams, with what each holds, in one round trip."""
        return await self._relay.consumers(streams)

    async def drop_idle_outbox_consumers(
        self, stream: bytes, consumers: Iterable[OutboxConsumer], keep: str, min_idle_ms: int
    ) -> list[str]:
        """Delete the relays of ``stream`` (but ``keep``) idle that hold nothing."""
        return await self._relay.drop_idle(stream, consumers, keep, min_idle_ms)
