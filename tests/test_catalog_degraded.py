"""The catalog while Redis is down (unreachable: nothing listens on its port): product pages
are still answered, with PostgreSQL's stock (the truth); the stock check says Redis is
unavailable (503 at the edge). Real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from devtools import devstack
from nexuscart import config
from nexuscart.adapters import postgres, redis_conn
from nexuscart.adapters.catalog_repo import CatalogRepo, Change, VariantFields
from nexuscart.adapters.catalog_store import CatalogStore
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.app.catalog import Catalog, PageCache, Unavailable
from nexuscart.domain import catalog as rules


@pytest.fixture
async def catalog(settings: config.Settings, migrated: None) -> AsyncIterator[Catalog]:
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> asyncpg.Pool:
        return pool

    dead = f"redis://127.0.0.1:{devstack.free_port()}/0"
    client = redis_conn.connect(config.RedisSettings(url=dead), timeout_s=0.5)
    pipe = RedisPipe(dead, 0.5)
    cache = PageCache(60.0, 100)
    cache.enable()
    yield Catalog(CatalogRepo(pg), CatalogStore(client, pipe), cache)
    pipe.close()
    await client.aclose()
    await pool.close()


async def test_pages_are_answered_from_postgresql_while_redis_is_down(catalog: Catalog) -> None:
    sku = f"DG-{uuid.uuid4().hex[:10]}"
    pid = rules.created_product_id(77, uuid.uuid4().hex)
    change = Change(
        title="Degraded",
        description="",
        brand="Acme",
        category_id=1,
        attributes={},
        images=[],
        status="active",
        new_variants=[VariantFields(sku, 500, "USD", {}, 5)],
        event="ProductCreated",
    )
    await catalog.repo.claim_skus(pid, [sku])
    await catalog.repo.create(pid, 77, change, "fp")
    await catalog.repo.adjust_stock(pid, sku, uuid.uuid4(), 3, "restock", "", 77, lambda _: None)
    page = await catalog.page(pid)
    assert page is not None
    assert b'"available":3' in page.body
    assert b'"stock_status":"low_stock"' in page.body
    with pytest.raises(Unavailable):
        await catalog.inventory([sku])
