"""Promotion definitions: PostgreSQL's ``promotions`` reference table (the truth, written by
admins) and the copy the checkout script checks in Redis (``{co}:promo``, owned by
adapters/reservations.py: the code's active flag, window and usage limits; the counters
next to it are the script's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis

from nexuscart.adapters.postgres import query
from nexuscart.adapters.reservations import PROMO, PUSED
from nexuscart.domain.promotions import Promotion, redis_value


def _promotion(r: Any) -> Promotion:
    # the row's columns are the Struct's fields (create_key, an extra one, is ignored)
    return msgspec.convert(dict(r), Promotion)


class PromotionsRepo:
    def __init__(self, pool: Callable[[], Awaitable[asyncpg.Pool]], client: aioredis.Redis):
        self.pool = pool
        self.client = client

    async def create(self, p: Promotion, key: str, actor: int) -> tuple[Promotion, str] | None:
        """Insert ``p`` unless its code exists. -> (the stored promotion, its create key), or
        None when it was inserted now."""
        pool = await self.pool()
        async with pool.acquire() as conn:
            inserted = await conn.fetchval(
                query("promotion_insert"),
                p.code,
                p.kind,
                p.value,
                p.currency,
                p.min_spend_minor,
                p.starts_at_ms,
                p.ends_at_ms,
                p.usage_limit,
                p.per_user_limit,
                list(p.category_ids),
                list(p.skus),
                key,
                actor,
            )
            if inserted is not None:
                return None
            row = await conn.fetchrow(query("promotion_by_code"), p.code)
        return _promotion(row), row["create_key"]

    async def get(self, code: str) -> Promotion | None:
        pool = await self.pool()
        row = await pool.fetchrow(query("promotion_by_code"), code)
        return None if row is None else _promotion(row)

    async def page(self, after: str, limit: int) -> list[Promotion]:
        pool = await self.pool()
        rows = await pool.fetch(query("promotion_page"), after, limit)
        return [_promotion(r) for r in rows]

    async def deactivate(self, code: str) -> bool:
        pool = await self.pool()
        return await pool.fetchval(query("promotion_deactivate"), code) is not None

    # -- the checkout's copy in Redis -----------------------------------------------------

    async def publish(self, p: Promotion) -> None:
        """Write the definition the checkout script checks (after PostgreSQL committed it)."""
        await self.client.hset(PROMO, p.code, redis_value(p))

    async def uses(self, codes: list[str]) -> list[int]:
        """Uses counted so far (reserved or sold, not given back) of each code."""
        if not codes:
            return []
        raw = await self.client.hmget(PUSED, codes)
        return [int(x or 0) for x in raw]
