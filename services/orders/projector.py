"""Orders service handlers: events -> orders, their items, promotion usages and timeline in
PostgreSQL, exactly once per event id.

The orders service only projects what Redis' scripts decided: inventory confirms and
releases reservations (services/inventory); people's transitions (fulfilment, cancel) are
written by the edge in PostgreSQL directly (docs/orders.md), so their OrderStatusChanged
events need nothing here.

A batch from Kafka is grouped by Citus shard of its user id (nexuscart._core.ShardRouter).
Each group is written in one transaction of statements whose rows all belong to that
shard, so on Citus every statement is routed to one shard:

1. the inbox rows (dedup by event id) of the events that can change something, returning
   the ones not seen before;
2. the orders, their items, promotion usages and "placed" timeline rows, for the fresh
   placements (StockReserved, OrderPlaced), multi-row;
3. the fresh status events (StockSold, StockReleased): the group's orders are locked and
   read, the state machine (domain/orders.py) folds each order's events in arrival order,
   and the new statuses and their timeline rows are written, multi-row.

Any order of arrival converges: a status event for an order not projected yet is folded
from PENDING_PAYMENT (every status event implies the placement) and creates the row; the
late placement fills in its details without touching the status. The Kafka offset is
committed only after the transactions committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

import asyncpg

from nexuscart import _core
from nexuscart.adapters.partitioning import DEFAULT_SHARD_COUNT
from nexuscart.adapters.postgres import insert_rows, query
from nexuscart.domain import orders as rules
from nexuscart.events import Envelope, OrderPlaced, StockReleased, StockReserved, StockSold

log = logging.getLogger("nexuscart.orders")
CONSUMER: Final = "orders"
FILL_PLACED: Final = query("orders_fill_placed")
LOCK: Final = query("orders_lock")
RETURN_PROMOTIONS: Final = query("promotion_usages_return")
SELLERS: Final = query("product_sellers")
ENDED_UNSOLD: Final = frozenset({rules.CANCELLED, rules.EXPIRED, rules.REFUNDED})

Placement = StockReserved | OrderPlaced
_ACTIVE: Final = (StockReserved, OrderPlaced, StockSold, StockReleased)


class OrdersProjector:
    def __init__(self, pool: asyncpg.Pool, shard_count: int = DEFAULT_SHARD_COUNT):
        self.pool = pool
        self.router = _core.ShardRouter(shard_count)
        self.sellers: dict[int, int | None] = {}  # product id -> seller (never changes)

    async def handle(self, batch: Sequence[Envelope]) -> int:
        """Apply a batch; return how many of its events were new (not in the inbox yet)."""
        # only events that can change an order are recorded (payment events and people's
        # transitions are someone else's writes: an inbox row would be all they cost here)
        active = [e for e in batch if isinstance(e.data, _ACTIVE)]
        if not active:
            return 0
        await self._learn_sellers(active)
        groups: dict[int, list[Envelope]] = defaultdict(list)
        # user_id from the payload, not the message key: a malformed key must not stall a
        # partition
        shards = self.router.shards_for_int8([e.data.user_id for e in active])
        for env, shard in zip(active, shards, strict=True):
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

    async def _learn_sellers(self, batch: list[Envelope]) -> None:
        unknown = {
            line.product_id
            for e in batch
            if isinstance(e.data, OrderPlaced)
            for line in e.data.lines
            if line.product_id not in self.sellers
        }
        if not unknown:
            return
        rows = await self.pool.fetch(SELLERS, sorted(unknown))
        found = {r["product_id"]: r["seller_id"] for r in rows}
        for pid in unknown:
            # a product not in the catalog (yet): no seller may fulfil, admins may; not
            # cached, so it is looked up again when it appears
            if pid in found:
                self.sellers[pid] = found[pid]
        if len(self.sellers) > 1_000_000:
            self.sellers.clear()

    async def _write_group_pooled(self, events: list[Envelope]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            return await write_group(conn, events, self.sellers)


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _placement_rows(
    d: Placement, sellers: dict[int, int | None]
) -> tuple[tuple[object, ...], list[tuple[object, ...]]]:
    """(orders row, order_items rows) of a placement."""
    if isinstance(d, StockReserved):
        total = d.quantity * d.unit_price_cents
        order: tuple[object, ...] = (d.user_id, d.order_id, d.sale_id, "flash", total,
                                     d.currency, _ts(d.expires_at_ms), total, 0, None)  # fmt: skip
        return order, [
            (d.user_id, d.order_id, 1, d.sku, d.quantity, d.unit_price_cents, None, None)
        ]
    order = (d.user_id, d.order_id, None, "regular", d.total_minor, d.currency,
             _ts(d.expires_at_ms), d.subtotal_minor, d.discount_minor, d.promo_code)  # fmt: skip
    items: list[tuple[object, ...]] = [
        (
            d.user_id,
            d.order_id,
            n,
            ln.sku,
            ln.quantity,
            ln.unit_price_minor,
            ln.product_id,
            sellers.get(ln.product_id),
        )
        for n, ln in enumerate(d.lines, 1)
    ]
    return order, items


async def write_group(
    conn: asyncpg.Connection, events: list[Envelope], sellers: dict[int, int | None] | None = None
) -> int:
    """Apply one shard group's events inside the caller's transaction; return how many were
    new (the others were applied before: the inbox knows their ids)."""
    sellers = sellers or {}
    rows = await insert_rows(
        conn, "inbox_insert", [(e.data.user_id, CONSUMER, e.id) for e in events]
    )
    fresh = {r["event_id"] for r in rows}
    new = [e for e in events if e.id in fresh]
    placed: dict[tuple[int, int], tuple[Envelope, Placement]] = {}
    for e in new:
        if isinstance(e.data, StockReserved | OrderPlaced):
            placed.setdefault((e.data.user_id, e.data.order_id), (e, e.data))
    timeline: list[tuple[object, ...]] = []
    if placed:
        await _write_placements(conn, placed, sellers, timeline)
    status_events = [e for e in new if not isinstance(e.data, StockReserved | OrderPlaced)]
    if status_events:
        await _write_statuses(conn, status_events, timeline)
    if timeline:
        await insert_rows(conn, "order_events_insert", timeline)
    return len(new)


async def _write_placements(
    conn: asyncpg.Connection,
    placed: dict[tuple[int, int], tuple[Envelope, Placement]],
    sellers: dict[int, int | None],
    timeline: list[tuple[object, ...]],
) -> None:
    orders: dict[tuple[int, int], tuple[object, ...]] = {}
    items: list[tuple[object, ...]] = []
    usages: dict[int, tuple[object, ...]] = {}
    for key, (env, d) in placed.items():
        orders[key], lines = _placement_rows(d, sellers)
        items.extend(lines)
        if isinstance(d, OrderPlaced) and d.promo_code:
            usages[d.order_id] = (d.user_id, d.promo_code, d.order_id, "used")
        timeline.append((d.user_id, d.order_id, env.id, None, rules.PENDING_PAYMENT, rules.SYSTEM,
                         None, "placed", env.occurred_at))  # fmt: skip
    created = await insert_rows(conn, "orders_insert_placed", list(orders.values()))
    if len(created) < len(orders):
        # rows a status event created first (its placement came late): fill them in
        done = {r["order_id"] for r in created}
        for (_, o), row in orders.items():
            if o in done:
                continue
            status = await conn.fetchval(FILL_PLACED, *row)
            if status in ENDED_UNSOLD and o in usages:
                # it ended before its placement arrived: the use was given back already
                usages[o] = (*usages[o][:3], "returned")
    await insert_rows(conn, "order_items_insert", items)
    if usages:
        await insert_rows(conn, "promotion_usage_insert", list(usages.values()))


async def _write_statuses(
    conn: asyncpg.Connection, status_events: list[Envelope], timeline: list[tuple[object, ...]]
) -> None:
    per_order: dict[tuple[int, int], list[tuple[Envelope, str, str]]] = defaultdict(list)
    for e in status_events:
        act = rules.system_action(e)
        if act is not None:
            per_order[(e.data.user_id, e.data.order_id)].append((e, *act))
    if not per_order:
        return
    users = sorted({u for u, _ in per_order})
    current = {
        (r["user_id"], r["order_id"]): r["status"]
        for r in await conn.fetch(LOCK, users, [o for _, o in per_order])
    }
    changed: list[tuple[object, ...]] = []
    returned: list[tuple[int, int]] = []
    for (u, o), evs in per_order.items():
        start = current.get((u, o), rules.PENDING_PAYMENT)
        state = start
        for e, action, reason in evs:
            state, steps = rules.fold(state, [(action, reason)])
            timeline.extend((u, o, e.id, a, b, rules.SYSTEM, None, why, e.occurred_at)
                            for a, b, why in steps)  # fmt: skip
        if state != start or (u, o) not in current:
            sale_id = getattr(evs[0][0].data, "sale_id", None)
            changed.append((u, o, sale_id, "flash" if sale_id is not None else "regular", state))
            if state in ENDED_UNSOLD:
                returned.append((u, o))
    if changed:
        await insert_rows(conn, "orders_set_status", changed, pad=False)
    if returned:
        await conn.executemany(RETURN_PROMOTIONS, returned)
