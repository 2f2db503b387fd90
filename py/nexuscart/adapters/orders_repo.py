"""PostgreSQL side of the order lifecycle: the buyer's orders with their timeline, the
seller/admin listing, people's transitions (one transaction: the status, its timeline row,
the promotion use given back, the OrderStatusChanged event in orders_outbox) and the outbox
the relay sends to orders.v1. SQL lives in sql/queries/*.sql; every statement but the
listing and the relay's poll names user_id (single shard on Citus)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import asyncpg
import msgspec

from nexuscart import events
from nexuscart.adapters.payments_repo import OutboxRow
from nexuscart.adapters.postgres import query
from nexuscart.domain import orders as rules

Pool = Callable[[], Awaitable[asyncpg.Pool]]
_encoder: Final = msgspec.json.Encoder()


class OrderItemView(msgspec.Struct, frozen=True, omit_defaults=True):
    line_no: int
    sku: str
    quantity: int
    unit_price_cents: int  # minor units of the order's currency
    product_id: int | None = None  # null: a flash sale's line
    seller_id: int | None = None


class TimelineEntry(msgspec.Struct, frozen=True):
    from_status: str | None  # null: the order was placed
    to_status: str
    actor: str  # system | buyer | seller | admin
    actor_id: int | None
    reason: str
    at: dt.datetime


class OrderView(msgspec.Struct, frozen=True):
    order_id: int
    user_id: int
    sale_id: int | None
    kind: str  # flash | regular
    status: str
    total_cents: int  # minor units of currency (the amount to pay)
    currency: str
    subtotal_minor: int
    discount_minor: int
    promo_code: str | None
    tracking_reference: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime | None
    items: list[OrderItemView]
    timeline: list[TimelineEntry] | None = None  # GET /orders/{id} only


class OrderSummary(msgspec.Struct, frozen=True):
    """A line of the seller/admin listing (``user_id`` is the buyer: the order's shard)."""

    user_id: int
    order_id: int
    sale_id: int | None
    kind: str
    status: str
    total_cents: int
    currency: str
    tracking_reference: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


_items: Final = msgspec.json.Decoder(list[OrderItemView])
_VIEW_FIELDS: Final = tuple(
    f for f in OrderView.__struct_fields__ if f not in ("items", "timeline")
)


class Moved(msgspec.Struct, frozen=True):
    """A person's transition as written: ``replayed`` when this request had moved it before."""

    from_status: str
    to_status: str
    sale_id: int | None
    replayed: bool = False


class NotFound(Exception):
    pass


class NotTheSeller(Exception):
    pass


class StatusChanged(Exception):
    """The order is not in the status the caller expected (If-Match / expected_status)."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


class OrdersRepo:
    def __init__(self, pool: Pool):
        self._pool = pool

    async def orders_of_user(
        self,
        user_id: int,
        *,
        order_id: int | None = None,
        before: int | None = None,
        limit: int = 1,
    ) -> list[OrderView]:
        p = await self._pool()
        rows = await p.fetch(query("orders_of_user"), user_id, order_id, before, limit)
        return [
            OrderView(**{f: r[f] for f in _VIEW_FIELDS}, items=_items.decode(r["items"]))
            for r in rows
        ]

    async def timeline(self, user_id: int, order_id: int) -> list[TimelineEntry]:
        p = await self._pool()
        rows = await p.fetch(query("order_timeline"), user_id, order_id)
        return [TimelineEntry(*r) for r in rows]

    async def admin_page(
        self, status: str | None, before: int | None, seller_id: int | None, limit: int
    ) -> list[OrderSummary]:
        p = await self._pool()
        rows = await p.fetch(query("orders_admin_page"), status, before, seller_id, limit)
        return [OrderSummary(*r) for r in rows]

    async def transition(
        self,
        user_id: int,
        order_id: int,
        action: str,
        actor: str,
        actor_id: int,
        event_id: uuid.UUID,
        reason: str,
        *,
        expected: str | None = None,
        tracking: str | None = None,
    ) -> Moved:
        """Move the order by ``action`` in one transaction (raises NotFound, NotTheSeller,
        StatusChanged, rules.IllegalTransition; nothing is written then). A seller must sell
        one of its lines. The same ``event_id`` again answers what it did (a replay)."""
        p = await self._pool()
        async with p.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(query("order_lock"), user_id, order_id)
            if row is None:
                raise NotFound(order_id)
            status, sale_id = row["status"], row["sale_id"]
            done = await conn.fetchval(query("order_event_seen"), user_id, order_id, event_id)
            if done is not None:
                return Moved(status, status, sale_id, replayed=True)
            if actor == "seller":
                sellers = {
                    r[0] for r in await conn.fetch(query("order_sellers"), user_id, order_id)
                }
                if actor_id not in sellers:
                    raise NotTheSeller(order_id)
            if expected is not None and expected != status:
                raise StatusChanged(status)
            to = rules.step(status, action, actor)
            await conn.execute(query("order_set_status"), user_id, order_id, to, tracking)
            now = dt.datetime.now(dt.UTC)
            await conn.execute(
                query("order_events_insert"),
                user_id, order_id, event_id, status, to, actor, actor_id, reason, now,
            )  # fmt: skip
            if to in (rules.CANCELLED, rules.REFUNDED):
                await conn.execute(query("promotion_usages_return"), user_id, order_id)
            change = events.OrderStatusChanged(
                order_id, sale_id, user_id, status, to, actor, actor_id, reason, tracking
            )
            env = events.Envelope(event_id, "OrderStatusChanged", 1, now, str(user_id), change)
            await conn.execute(
                query("orders_outbox_insert"),
                user_id, event_id, events.ORDERS_TOPIC, _encoder.encode(env),
            )  # fmt: skip
            return Moved(status, to, sale_id)

    async def outbox_batch(self, limit: int) -> list[OutboxRow]:
        p = await self._pool()
        rows = await p.fetch(query("orders_outbox_batch"), limit)
        return [
            OutboxRow(r["user_id"], r["event_id"], r["topic"], bytes(r["payload"])) for r in rows
        ]

    async def outbox_delete(self, rows: Sequence[OutboxRow]) -> None:
        p = await self._pool()
        await p.executemany(query("orders_outbox_delete"), [(r.user_id, r.event_id) for r in rows])
