"""Inventory handlers: expire unpaid holds and everyday reservations on time, and check
stock conservation.

Expiry runs the release script only for holds whose time has passed (checked again inside
Redis, atomically), so two expirers, or an expirer racing a payment confirm, never release
a unit twice or release a sold one.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import asyncpg
import msgspec

from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.postgres import query
from nexuscart.adapters.reservations import ReservationStore
from nexuscart.domain.flash_sale import conserved


class SaleReport(msgspec.Struct):
    sale_id: int
    units: int
    available: int
    held: int
    sold: int
    redis_ok: bool
    pg_pending: int | None = None
    pg_confirmed: int | None = None
    pg_ok: bool | None = None


async def expire_due(store: FlashSaleStore, now_ms: int | None = None, limit: int = 500) -> int:
    """Release every hold past its expiry; return the units released."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    released = 0
    iso = dt.datetime.now(dt.UTC).isoformat()
    for sale_id in await store.sale_ids():
        for order_id in await store.due_holds(sale_id, now_ms, limit):
            released += await store.release(
                sale_id, order_id, "expired", str(uuid.uuid4()), iso, only_if_due=True
            )
    return released


async def expire_reservations(
    store: ReservationStore, now_ms: int | None = None, limit: int = 500
) -> int:
    """Release every everyday reservation past its expiry (checked again inside Redis, like
    a hold's); return the units released."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    released = 0
    iso = dt.datetime.now(dt.UTC).isoformat()
    for user_id, order_id in await store.due(now_ms, limit):
        released += await store.release(
            order_id, user_id, "expired", str(uuid.uuid4()), iso, only_if_due=True
        )
    return released


async def reconcile(store: FlashSaleStore, pool: asyncpg.Pool | None) -> list[SaleReport]:
    """Per sale: units = available + held + sold in Redis (counters and entries agree), and
    in PostgreSQL pending+paid quantity = held, confirmed quantity = sold."""
    reports = []
    for sale_id in await store.sale_ids():
        t = await store.totals(sale_id)
        ok = (
            conserved(t["units"], t["available"], t["held"], t["sold"])
            and t["held"] == t["held_entries"]
            and t["sold"] == t["sold_entries"]
        )
        rep = SaleReport(
            sale_id=sale_id,
            units=t["units"],
            available=t["available"],
            held=t["held"],
            sold=t["sold"],
            redis_ok=ok,
        )
        if pool is not None:
            row = await pool.fetchrow(query("reconcile_sale_orders"), sale_id)
            rep.pg_pending = int(row["pending"])
            rep.pg_confirmed = int(row["confirmed"])
            rep.pg_ok = rep.pg_pending == t["held"] and rep.pg_confirmed == t["sold"]
        reports.append(rep)
    return reports
