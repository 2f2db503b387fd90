"""PostgreSQL side of flash sales: the durable sale rows (the buyer's orders are in
orders_repo.py).

SQL lives in sql/queries/*.sql; this module only binds parameters and maps rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Final

import asyncpg
import msgspec

from nexuscart.adapters.postgres import query
from nexuscart.domain.flash_sale import Sale, SaleSpec

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US: Final = dt.timedelta(microseconds=1)


def _ms(ts: dt.datetime) -> int:
    """Epoch milliseconds of a timestamptz, rounded as ``(extract(epoch ...) * 1000)::bigint``
    would (the stores go through ``to_timestamp(ms / 1000.0)``)."""
    return ((ts - _EPOCH) // _US + 500) // 1000


def _sale(row: Any) -> Sale:
    return Sale(
        sale_id=row["sale_id"],
        sku=row["sku"],
        units=row["units"],
        price_cents=row["price_cents"],
        currency=row["currency"],
        per_user_limit=row["per_user_limit"],
        starts_at_ms=_ms(row["starts_at"]),
        ends_at_ms=_ms(row["ends_at"]),
        hold_ttl_s=row["hold_ttl_s"],
        ended=row["ended"],
    )


class IdempotencyKeyReused(Exception):
    """A create-sale retry whose request differs from the one that created the sale."""

    def __init__(self, sale_id: int):
        super().__init__(f"the key created sale {sale_id} with a different request")
        self.sale_id = sale_id


def request_fingerprint(spec: SaleSpec, hold_ttl_s: int) -> str:
    """SHA-256 of the canonical encoding of the whole request, with the hold TTL resolved
    (a body that omits it and one that states the default are the same request). msgspec
    encodes a Struct's fields in declaration order, defaults included: one spelling each."""
    canonical = msgspec.json.encode(msgspec.structs.replace(spec, hold_ttl_s=hold_ttl_s))
    return hashlib.sha256(canonical).hexdigest()


def _fingerprint_of_row(row: Any) -> str:
    stored: str | None = row["create_fingerprint"]
    if stored is not None:
        return stored
    # created before fingerprints were stored: the row's fields are the best record
    sale = _sale(row)
    spec = SaleSpec(
        sku=sale.sku,
        units=sale.units,
        price_cents=sale.price_cents,
        starts_at_ms=sale.starts_at_ms,
        ends_at_ms=sale.ends_at_ms,
        per_user_limit=sale.per_user_limit,
        currency=sale.currency,
    )
    return request_fingerprint(spec, sale.hold_ttl_s)


async def sale_by_create_key(pool: asyncpg.Pool, create_key: str) -> Sale | None:
    """The sale created under ``create_key``, or None."""
    row = await pool.fetchrow(query("sale_by_create_key"), create_key)
    return None if row is None else _sale(row)


async def create_sale(
    pool: asyncpg.Pool, create_key: str, spec: SaleSpec, hold_ttl_s: int
) -> tuple[Sale, bool]:
    """(sale, existed). A retry with the same key and the same request returns the first
    sale (existed = True); the same key with any other field raises IdempotencyKeyReused.

    The key is looked up first and the insert runs only when it is absent, so a replay
    draws no sale id (an identity value is drawn before ON CONFLICT is checked); only two
    first requests racing on one key spend one id, and the loser re-reads the winner's row.
    """
    fingerprint = request_fingerprint(spec, hold_ttl_s)
    lookup = query("sale_by_create_key")
    row = await pool.fetchrow(lookup, create_key)
    if row is None:
        row = await pool.fetchrow(
            query("sale_insert"),
            create_key,
            fingerprint,
            spec.sku,
            spec.units,
            spec.price_cents,
            spec.currency,
            hold_ttl_s,
            spec.per_user_limit,
            spec.starts_at_ms,
            spec.ends_at_ms,
        )
        if row is not None:
            return _sale(row), False
        row = await pool.fetchrow(lookup, create_key)
        if row is None:  # pragma: no cover - a key is never deleted
            raise RuntimeError(f"create key {create_key!r} conflicted but is not found")
    if _fingerprint_of_row(row) != fingerprint:
        raise IdempotencyKeyReused(row["sale_id"])
    return _sale(row), True


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
