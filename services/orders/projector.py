"""Orders service handlers: events -> orders in PostgreSQL, exactly once per event id.

The orders service only projects: inventory confirms paid holds (services/inventory).

A batch from Kafka is grouped by Citus shard of its user id (nexuscart._core.ShardRouter).
Each group is written in one transaction of multi-row statements whose rows all belong to
that shard, so on Citus every statement is routed to one shard:

1. the inbox rows (dedup by event id), returning the events not seen before;
2. the orders and their items, for the fresh StockReserved events;
3. the status of each order, for the fresh status events (the highest rank of the batch).

Any order of arrival converges: a status event for an order not projected yet creates the
row with that status, and the late reservation fills in its details without moving the
status back. The Kafka offset is committed only after the transactions committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Final, TypeVar

import asyncpg

from nexuscart import _core
from nexuscart.adapters.partitioning import DEFAULT_SHARD_COUNT
from nexuscart.adapters.postgres import MAX_PARAMS, values_query
from nexuscart.domain import orders as order_rules
from nexuscart.events import Envelope, StockReserved

log = logging.getLogger("nexuscart.orders")
CONSUMER: Final = "orders"
# rows per multi-row statement: widest row (orders, 6 parameters) under the protocol limit
MAX_ROWS: Final = min(1000, MAX_PARAMS // 6)
_T = TypeVar("_T")


class OrdersProjector:
    def __init__(self, pool: asyncpg.Pool, shard_count: int = DEFAULT_SHARD_COUNT):
        self.pool = pool
        self.router = _core.ShardRouter(shard_count)
        self.applied = 0

    async def handle(self, batch: Sequence[Envelope]) -> None:
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
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _write_group_pooled(self, events: list[Envelope]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            self.applied += await write_group(conn, events)


def _chunks(rows: list[_T]) -> list[list[_T]]:
    return [rows[i : i + MAX_ROWS] for i in range(0, len(rows), MAX_ROWS)]


async def _insert(conn: asyncpg.Connection, name: str, rows: list[tuple[object, ...]]) -> None:
    for chunk in _chunks(rows):
        await conn.execute(values_query(name, len(chunk)), *[v for row in chunk for v in row])


async def write_group(conn: asyncpg.Connection, events: list[Envelope]) -> int:
    """Apply one shard group's events inside the caller's transaction; return how many were
    new (the others were applied before: the inbox knows their ids)."""
    fresh: set[object] = set()
    for chunk in _chunks(events):
        rows = await conn.fetch(
            values_query("inbox_insert", len(chunk)),
            *[v for e in chunk for v in (e.data.user_id, CONSUMER, e.id)],
        )
        fresh.update(r["event_id"] for r in rows)
    new = [e for e in events if e.id in fresh]
    reserved: dict[tuple[int, int], StockReserved] = {}
    for e in new:
        if isinstance(e.data, StockReserved):
            # one row per order in a statement (ON CONFLICT DO UPDATE may touch a row once)
            reserved.setdefault((e.data.user_id, e.data.order_id), e.data)
    if reserved:
        await _insert(
            conn,
            "orders_insert_reserved",
            [
                (
                    d.user_id,
                    d.order_id,
                    d.sale_id,
                    d.quantity * d.unit_price_cents,
                    d.currency,
                    dt.datetime.fromtimestamp(d.expires_at_ms / 1000, dt.UTC),
                )
                for d in reserved.values()
            ],
        )
        await _insert(
            conn,
            "order_items_insert",
            [
                (d.user_id, d.order_id, d.sku, d.quantity, d.unit_price_cents)
                for d in reserved.values()
            ],
        )
    status_events = [e for e in new if not isinstance(e.data, StockReserved)]
    final = order_rules.collapse(status_events)
    if final:
        sale_of = {(e.data.user_id, e.data.order_id): e.data.sale_id for e in status_events}
        await _insert(
            conn,
            "orders_upsert_status",
            [(u, o, sale_of[u, o], status) for (u, o), status in final.items()],
        )
    return len(new)
