"""Orders service handlers: events -> orders in PostgreSQL, exactly once per event id.

The orders service only projects: inventory confirms paid holds (services/inventory).

A batch from Kafka is grouped by Citus shard of its user id (nexuscart._core.ShardRouter).
Each group is written in one transaction of statements whose rows all belong to that
shard, so on Citus every statement is routed to one shard:

1. the inbox rows (dedup by event id), returning the events not seen before;
2. the orders and their items, for the fresh StockReserved events;
3. the status of each order, for the fresh status events (the highest rank of the batch),
   one single-row upsert per order (executemany: one round trip, one shard each).

Any order of arrival converges: a status event for an order not projected yet creates the
row with that status, and the late reservation fills in its details without moving the
status back. The Kafka offset is committed only after the transactions committed.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

import asyncpg

from nexuscart import _core
from nexuscart.adapters.partitioning import DEFAULT_SHARD_COUNT
from nexuscart.adapters.postgres import MAX_PARAMS, query, values_query
from nexuscart.domain import orders as order_rules
from nexuscart.events import Envelope, OrderPlaced, StockReserved

log = logging.getLogger("nexuscart.orders")
CONSUMER: Final = "orders"
# rows per multi-row statement: widest row (orders, 6 parameters) under the protocol limit
MAX_ROWS: Final = min(1000, MAX_PARAMS // 6)
FILL_RESERVED: Final = query("orders_fill_reserved")
UPSERT_STATUS: Final = query("orders_upsert_status")


class OrdersProjector:
    def __init__(self, pool: asyncpg.Pool, shard_count: int = DEFAULT_SHARD_COUNT):
        self.pool = pool
        self.router = _core.ShardRouter(shard_count)

    async def handle(self, batch: Sequence[Envelope]) -> int:
        """Apply a batch; return how many of its events were new (not in the inbox yet)."""
        groups: dict[int, list[Envelope]] = defaultdict(list)
        # user_id from the payload, not the message key: a malformed key must not stall a
        # partition
        shards = self.router.shards_for_int8([e.data.user_id for e in batch])
        for env, shard in zip(batch, shards, strict=True):
            groups[shard].append(env)
        # shard groups are independent (different users): write them concurrently, one
        # pooled connection each; a user's events stay in order inside their group.
        # return_exceptions: every group has finished before the caller retries any.
        results = await asyncio.gather(
            *(self._write_group_pooled(events) for events in groups.values()),
            return_exceptions=True,
        )
        applied = 0
        for r in results:
            if isinstance(r, BaseException):
                raise r
            applied += r
        return applied

    async def _write_group_pooled(self, events: list[Envelope]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            return await write_group(conn, events)


# Row counts a multi-row statement is padded up to: a few statement shapes per query, so
# they stay in asyncpg's prepared-statement cache (an unseen shape costs a Parse round trip
# and a plan), at most 1.5x the rows.
_SIZES: Final = sorted(
    {min(MAX_ROWS, m << k) for k in range(11) for m in (2, 3)} | {1, 2, MAX_ROWS}
)


def _padded_chunks(rows: list[tuple[object, ...]]) -> list[list[tuple[object, ...]]]:
    """``rows`` in statements of at most MAX_ROWS, each padded to a size of _SIZES by
    repeating its last row: only for ON CONFLICT DO NOTHING statements, where a repeated
    row is a conflict with itself and changes nothing."""
    out = []
    for i in range(0, len(rows), MAX_ROWS):
        chunk = rows[i : i + MAX_ROWS]
        size = _SIZES[bisect.bisect_left(_SIZES, len(chunk))]
        out.append(chunk + [chunk[-1]] * (size - len(chunk)))
    return out


async def _insert(
    conn: asyncpg.Connection, name: str, rows: list[tuple[object, ...]]
) -> list[asyncpg.Record]:
    """A DO NOTHING multi-row insert; its RETURNING rows, if any."""
    out: list[asyncpg.Record] = []
    for chunk in _padded_chunks(rows):
        sql = values_query(name, len(chunk))
        out.extend(await conn.fetch(sql, *[v for row in chunk for v in row]))
    return out


async def write_group(conn: asyncpg.Connection, events: list[Envelope]) -> int:
    """Apply one shard group's events inside the caller's transaction; return how many were
    new (the others were applied before: the inbox knows their ids)."""
    rows = await _insert(conn, "inbox_insert", [(e.data.user_id, CONSUMER, e.id) for e in events])
    fresh = {r["event_id"] for r in rows}
    new = [e for e in events if e.id in fresh]
    reserved: dict[tuple[int, int], StockReserved] = {}
    for e in new:
        if isinstance(e.data, StockReserved):
            reserved.setdefault((e.data.user_id, e.data.order_id), e.data)
    if reserved:
        details = {
            key: (
                d.user_id,
                d.order_id,
                d.sale_id,
                d.quantity * d.unit_price_cents,
                d.currency,
                dt.datetime.fromtimestamp(d.expires_at_ms / 1000, dt.UTC),
            )
            for key, d in reserved.items()
        }
        created = await _insert(conn, "orders_insert_reserved", list(details.values()))
        if len(created) < len(details):
            # rows a status event created first (its reservation came late): fill them in
            done = {r["order_id"] for r in created}
            await conn.executemany(
                FILL_RESERVED, [row for (_, o), row in details.items() if o not in done]
            )
        await _insert(
            conn,
            "order_items_insert",
            [
                (d.user_id, d.order_id, d.sku, d.quantity, d.unit_price_cents)
                for d in reserved.values()
            ],
        )
    # OrderPlaced (everyday orders) is not projected yet: issue 11 adds it
    status_events = [e for e in new if not isinstance(e.data, StockReserved | OrderPlaced)]
    final = order_rules.collapse(status_events)
    if final:
        sale_of = {
            (e.data.user_id, e.data.order_id): getattr(e.data, "sale_id", None)
            for e in status_events
        }
        await conn.executemany(
            UPSERT_STATUS,
            [(u, o, sale_of[u, o], st, order_rules.RANK[st]) for (u, o), st in final.items()],
        )
    return len(new)
