"""The per-worker page cache in process, on the real PostgreSQL and Redis: concurrent first
views of a product share one build; a build that began before a change is neither stored
nor joined by views that come after the change."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

from nexuscart import config
from nexuscart.adapters import postgres
from nexuscart.adapters.catalog_repo import CatalogRepo, Change, Product, VariantFields
from nexuscart.adapters.catalog_store import CatalogStore, StockLevel
from nexuscart.app.catalog import Catalog, PageCache
from nexuscart.domain import catalog as rules


class CountingRepo(CatalogRepo):
    """The real repository, counting the product reads (one per page build)."""

    reads = 0
    listings = 0

    async def product(self, product_id: int) -> Product | None:
        self.reads += 1
        return await super().product(product_id)

    async def page(
        self, cursor: int | None, category_ids: Sequence[int] | None, limit: int
    ) -> list[Product]:
        self.listings += 1
        return await super().page(cursor, category_ids, limit)


@pytest.fixture
async def catalog(settings: config.Settings, migrated: None) -> AsyncIterator[Catalog]:
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> asyncpg.Pool:
        return pool

    client = aioredis.Redis.from_url(settings.redis.url)
    cache = PageCache(300.0, 1000)
    cache.enable()
    yield Catalog(CountingRepo(pg), CatalogStore(client), cache)
    await client.aclose()
    await pool.close()


async def _product(catalog: Catalog, title: str) -> int:
    sku = f"PC-{uuid.uuid4().hex[:10]}"
    pid = rules.created_product_id(99, uuid.uuid4().hex)
    change = Change(
        title=title,
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
    await catalog.repo.create(pid, 99, change, "fp")
    return pid


async def test_concurrent_first_views_share_one_build(catalog: Catalog) -> None:
    pid = await _product(catalog, "Popular")
    repo = catalog.repo
    assert isinstance(repo, CountingRepo)
    before = repo.reads
    pages = await asyncio.gather(*(catalog.page(pid) for _ in range(50)))
    assert repo.reads - before == 1
    assert {p.body for p in pages if p is not None} == {pages[0].body if pages[0] else b""}
    assert catalog.cache.get(pid) is not None


async def test_views_after_a_change_do_not_join_a_build_that_began_before_it(
    catalog: Catalog,
) -> None:
    pid = await _product(catalog, "Before")
    early = asyncio.ensure_future(catalog.page(pid))  # a build begins...
    await asyncio.sleep(0)

    def rename(cur: Product) -> Change:
        return Change(
            title="After",
            description="",
            brand="Acme",
            category_id=1,
            attributes={},
            images=[],
            status="active",
        )

    await catalog.repo.write(pid, 1, uuid.uuid4().hex, rename)
    catalog.cache.drop(pid)  # ...the change is announced while it runs
    late = await catalog.page(pid)
    await early
    assert late is not None
    assert b'"title":"After"' in late.body
    cached = catalog.cache.get(pid)
    assert cached is not None
    assert b'"title":"After"' in cached.body


async def test_a_busy_listing_is_read_once_and_a_change_is_listed_at_once(
    catalog: Catalog,
) -> None:
    """GET /products read PostgreSQL on every request (31-48 req/s in the suite's PT-01):
    concurrent requests for one listing page now share one read, and a product change (the
    page cache's epoch) is listed by the next request, not after the cache's TTL."""
    repo = catalog.repo
    assert isinstance(repo, CountingRepo)
    before = repo.listings
    bodies = await asyncio.gather(*(catalog.listing(None, None, 100) for _ in range(50)))
    assert repo.listings - before == 1
    assert len(set(bodies)) == 1
    pid = await _product(catalog, "Listed")
    catalog.cache.drop(pid)  # what the change feed does on the product's announcement
    listed = msgspec.json.decode(await catalog.listing(pid - 1, None, 100))
    assert [item["product_id"] for item in listed["items"]][:1] == [pid]


async def test_a_cached_page_shows_the_stock_redis_has_at_each_view(catalog: Catalog) -> None:
    """The page body is built once, its stock read from Redis per view: a level written
    without any announcement on the change stream (as an everyday checkout's reservation
    moves what is available) is on the next view, with a new ETag, the page not rebuilt."""
    pid = await _product(catalog, "Live")
    page = await catalog.page(pid)
    assert page is not None
    (sku,) = [v["sku"] for v in msgspec.json.decode(page.body)["variants"]]
    first = await catalog.show(page)
    assert b'"available":0,"stock_status":"out_of_stock"' in first.body
    repo = catalog.repo
    assert isinstance(repo, CountingRepo)
    reads = repo.reads
    await catalog.store.set_levels([(sku, StockLevel(99, 3, 5))])
    same = await catalog.page(pid)
    assert same is page  # still the cached page: no rebuild
    now = await catalog.show(page)
    assert msgspec.json.decode(now.body)["variants"][0] == {
        **msgspec.json.decode(first.body)["variants"][0],
        "available": 3,
        "stock_status": "low_stock",
    }
    assert now.etag != first.etag
    assert ("etag", now.etag) in now.headers
    await catalog.store.set_levels([(sku, StockLevel(100, 40, 5))])
    later = await catalog.show(page)
    assert b'"available":40,"stock_status":"in_stock"' in later.body
    assert repo.reads == reads
