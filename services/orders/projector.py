"""Orders service handlers: events -> orders in PostgreSQL, exactly once per event id.

A batch from Kafka is grouped by Citus shard of its user id (nexuscart._core.ShardRouter) and
each group is written by one statement: the inbox insert (dedup by event id), the new orders
and their items, all or nothing. Status changes go in a second statement with the same
inbox guard. The Kafka offset is committed only after the database committed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

import asyncpg

from nexuscart import _core
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.partitioning import DEFAULT_SHARD_COUNT
from nexuscart.adapters.postgres import query
from nexuscart.domain import orders as order_rules
from nexuscart.events import Envelope, PaymentSucceeded, StockReserved

log = logging.getLogger("nexuscart.orders")
CONSUMER: Final = "orders"

INSERT_RESERVED: Final = query("orders_insert_reserved")
UPDATE_STATUS: Final = query("orders_update_status")


class OrdersProjector:
    def __init__(
        self, pool: asyncpg.Pool, store: FlashSaleStore, shard_count: int = DEFAULT_SHARD_COUNT
    ):
        self.pool = pool
        self.store = store
        self.router = _core.ShardRouter(shard_count)
        self.applied = 0
        self.unconfirmed_payments = 0

    async def handle(self, batch: Sequence[Envelope]) -> None:
        await self._confirm_paid_holds(batch)
        groups: dict[int, list[Envelope]] = defaultdict(list)
        # user_id from the payload, not the message key: a malformed key must not stall a
        # partition
        shards = self.router.shards_for_int8([e.data.user_id for e in batch])
        for env, shard in zip(batch, shards, strict=True):
            groups[shard].append(env)
        # shard groups are independent (different users): write them concurrently, one
        # pooled connection each; a user's events stay in order inside their group
        await asyncio.gather(*(self._write_group_pooled(events) for events in groups.values()))

    async def _write_group_pooled(self, events: list[Envelope]) -> None:
        async with self.pool.acquire() as conn:
            await self._write_group(conn, events)

    async def _confirm_paid_holds(self, batch: Sequence[Envelope]) -> None:
        # Redis first (idempotent there), the database after: a crash in between redelivers
        # the event, the confirm answers the same, and the inbox then records it once.
        for env in batch:
            if isinstance(env.data, PaymentSucceeded):
                d = env.data
                n = await self.store.confirm(
                    d.sale_id, d.order_id, str(_derived_id(env)), env.occurred_at.isoformat()
                )
                if n < 0:
                    # the hold expired before the payment landed: the order stays EXPIRED
                    # and the payment must be refunded (services/payments owns refunds)
                    self.unconfirmed_payments += 1
                    log.warning("payment for order %s arrived after its hold ended", d.order_id)

    async def _write_group(self, conn: asyncpg.Connection, events: list[Envelope]) -> None:
        reserved = [e for e in events if isinstance(e.data, StockReserved)]
        others = [e for e in events if not isinstance(e.data, StockReserved)]
        if reserved:
            cols: list[list[object]] = [[] for _ in range(9)]
            for e in reserved:
                d = e.data
                assert isinstance(d, StockReserved)
                for col, v in zip(
                    cols,
                    (
                        d.user_id,
                        e.id,
                        d.order_id,
                        d.sale_id,
                        d.sku,
                        d.quantity,
                        d.unit_price_cents,
                        d.currency,
                        d.expires_at_ms,
                    ),
                    strict=True,
                ):
                    col.append(v)
            row = await conn.fetchrow(INSERT_RESERVED, *cols, CONSUMER)
            self.applied += int(row["fresh"])
        if others:
            final = order_rules.collapse(others)
            await conn.execute(
                UPDATE_STATUS,
                [e.data.user_id for e in others],
                [e.id for e in others],
                [u for u, _ in final],
                [o for _, o in final],
                list(final.values()),
                CONSUMER,
            )
            self.applied += len(others)


def _derived_id(env: Envelope) -> uuid.UUID:
    """The StockSold event id for a payment: derived, so a redelivery reuses it."""
    return uuid.uuid5(env.id, "StockSold")
