"""PostgreSQL side of flash sales and orders: the durable sale rows and the buyer's orders.

SQL lives in sql/queries/*.sql; this module only binds parameters and maps rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import asyncpg
import msgspec

from nexuscart.adapters.postgres import query
from nexuscart.domain.flash_sale import Sale, SaleSpec


class OrderItemView(msgspec.Struct, frozen=True):
    line_no: int
    sku: str
    quantity: int
    unit_price_cents: int


class OrderView(msgspec.Struct, frozen=True):
    order_id: int
    user_id: int
    sale_id: int | None
    status: str
    total_cents: int
    currency: str
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime | None
    items: list[OrderItemView]


_items: Final = msgspec.json.Decoder(list[OrderItemView])


def _sale(row: Any) -> Sale:
    return Sale(
        sale_id=row["sale_id"],
        sku=row["sku"],
        units=row["units"],
        price_cents=row["price_cents"],
        currency=row["currency"],
        per_user_limit=row["per_user_limit"],
        starts_at_ms=row["starts_at_ms"],
        ends_at_ms=row["ends_at_ms"],
        hold_ttl_s=row["hold_ttl_s"],
        ended=row["ended"],
    )


async def insert_sale(
    pool: asyncpg.Pool, create_key: str, spec: SaleSpec, hold_ttl_s: int
) -> tuple[Sale, bool]:
    """(sale, existed): a retried create with the same key returns the first sale."""
    row = await pool.fetchrow(
        query("sale_insert"),
        create_key,
        spec.sku,
        spec.units,
        spec.price_cents,
        spec.currency,
        hold_ttl_s,
        spec.per_user_limit,
        spec.starts_at_ms,
        spec.ends_at_ms,
    )
    return _sale(row), bool(row["existed"])


async def lock_sale(conn: asyncpg.Connection, sale_id: int) -> Sale | None:
    row = await conn.fetchrow(query("sale_lock"), sale_id)
    return None if row is None else _sale(row)


async def save_sale(conn: asyncpg.Connection, sale: Sale) -> None:
    await conn.execute(
        query("sale_save"),
        sale.sale_id,
        sale.units,
        sale.price_cents,
        sale.starts_at_ms,
        sale.ends_at_ms,
        sale.per_user_limit,
        sale.ended,
    )


async def orders_of_user(
    pool: asyncpg.Pool,
    user_id: int,
    *,
    order_id: int | None = None,
    before: int | None = None,
    limit: int = 1,
) -> list[OrderView]:
    rows = await pool.fetch(query("orders_of_user"), user_id, order_id, before, limit)
    return [
        OrderView(
            order_id=r["order_id"],
            user_id=r["user_id"],
            sale_id=r["sale_id"],
            status=r["status"],
            total_cents=r["total_cents"],
            currency=r["currency"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            expires_at=r["expires_at"],
            items=_items.decode(r["items"]),
        )
        for r in rows
    ]
