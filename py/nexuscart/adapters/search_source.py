"""What a search-index rebuild reads from the catalog in PostgreSQL: the category tree and
every active product with its variants, page by page. Read-only, through the catalog's own
named queries (``category_all``, ``products_page``, ``variants_of_products``): the catalog
owns its tables and their SQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from nexuscart import events
from nexuscart.adapters.postgres import query
from nexuscart.domain.search import ProductRow, Variant

Pool = Callable[[], Awaitable[asyncpg.Pool]]


def _json(value: Any) -> dict[str, str]:
    raw = json.loads(value) if isinstance(value, str | bytes) else (value or {})
    return {str(k): str(v) for k, v in raw.items()}


def _ms(ts: Any) -> int:
    return int(ts.timestamp() * 1000)


class PgCatalogSource:
    def __init__(self, pool: Pool):
        self.pool = pool

    async def category_parents(self) -> dict[int, int | None]:
        pool = await self.pool()
        rows = await pool.fetch(query("category_all"))
        return {r["category_id"]: r["parent_id"] for r in rows}

    async def active_products(self, page: int) -> AsyncIterator[list[ProductRow]]:
        pool = await self.pool()
        after: int | None = None
        while True:
            rows = await pool.fetch(query("products_page"), after, None, page)
            if not rows:
                return
            ids = [r["product_id"] for r in rows]
            variants: dict[int, list[Variant]] = {}
            for v in await pool.fetch(query("variants_of_products"), ids):
                variants.setdefault(v["product_id"], []).append(
                    Variant(
                        sku=v["sku"],
                        price_minor=v["price_minor"],
                        currency=v["currency"],
                        attributes=_json(v["attributes"]),
                        stock=v["stock"],
                        stock_version=v["stock_version"],
                    )
                )
            yield [
                ProductRow(
                    product=events.ProductData(
                        product_id=r["product_id"],
                        seller_id=r["seller_id"],
                        category_id=r["category_id"],
                        title=r["title"],
                        description=r["description"],
                        brand=r["brand"],
                        attributes=_json(r["attributes"]),
                        images=list(r["images"]),
                        status=r["status"],
                        version=r["version"],
                        popularity=r["popularity"],
                        variants=[],
                        created_at_ms=_ms(r["created_at"]),
                        updated_at_ms=_ms(r["updated_at"]),
                    ),
                    variants=variants.get(r["product_id"], []),
                )
                for r in rows
            ]
            if len(rows) < page:
                return
            after = ids[-1]
