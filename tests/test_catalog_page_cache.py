"""The per-worker page cache in process, on the real PostgreSQL and Redis: concurrent first
views of a product share one build; a build that began before a change is neither stored
nor joined by views that come after the change; a page one worker built is shared with the
others through Redis, and a change (or a build that read the product before it) never
leaves the old page shared."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

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
async def workers(settings: config.Settings, migrated: None) -> AsyncIterator[list[Catalog]]:
    """Two workers' catalogs: their own page caches, the same PostgreSQL and Redis."""
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> asyncpg.Pool:
        return pool

    client = aioredis.Redis.from_url(settings.redis.url)
    caches = [PageCache(300.0, 1000) for _ in range(2)]
    for cache in caches:
        cache.enable()
    yield [Catalog(CountingRepo(pg), CatalogStore(client), cache) for cache in caches]
    await client.aclose()
    await pool.close()


@pytest.fixture
def catalog(workers: list[Catalog]) -> Catalog:
    return workers[0]


async def _announce(catalog: Catalog, pid: int) -> None:
    """What a writer does after its commit (``Catalog._after_write``)."""
    catalog.cache.drop(pid)
    await catalog.store.publish_changed(pid)


def _change(title: str, **more: Any) -> Change:
    return Change(
        title=title,
        description="",
        brand="Acme",
        category_id=1,
        attributes={},
        images=[],
        status="active",
        **more,
    )


async def _product(catalog: Catalog, title: str) -> int:
    sku = f"PC-{uuid.uuid4().hex[:10]}"
    pid = rules.created_product_id(99, uuid.uuid4().hex)
    change = _change(
        title, new_variants=[VariantFields(sku, 500, "USD", {}, 5)], event="ProductCreated"
    )
    await catalog.repo.claim_skus(pid, [sku])
    await catalog.repo.create(pid, 99, change, "fp")
    return pid


def _rename(title: str) -> Callable[[Product], Change]:
    return lambda _: _change(title)


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
    await catalog.repo.write(pid, 1, uuid.uuid4().hex, _rename("After"))
    await _announce(catalog, pid)  # ...the change is announced while it runs
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


def _reads(catalog: Catalog) -> int:
    assert isinstance(catalog.repo, CountingRepo)
    return catalog.repo.reads


async def test_a_page_one_worker_built_is_shared_with_the_other_with_its_live_stock(
    workers: list[Catalog],
) -> None:
    a, b = workers
    sources: list[str] = []
    a.on_page_built = b.on_page_built = sources.append  # the edge's metric
    pid = await _product(a, "Shared")
    built = await a.page(pid)
    assert built is not None
    reads = _reads(b)
    got = await b.page(pid)
    assert _reads(b) == reads  # from Redis: no PostgreSQL read, no build
    assert sources == ['source="built"', 'source="shared"']
    assert got is not None
    assert (got.body, got.etag, got.headers) == (built.body, built.etag, built.headers)
    assert got.shared is not None
    (sku,) = got.shared.skus
    await b.store.set_levels([(sku, StockLevel(7, 3, 5))])
    assert b'"available":3,"stock_status":"low_stock"' in (await b.show(got)).body


async def test_an_announced_change_takes_the_shared_page_away(workers: list[Catalog]) -> None:
    a, b = workers
    pid = await _product(a, "Before")
    assert await a.page(pid) is not None  # shared
    await a.repo.write(pid, 1, uuid.uuid4().hex, _rename("After"))
    await _announce(a, pid)
    reads = _reads(b)
    page = await b.page(pid)
    assert page is not None
    assert b'"title":"After"' in page.body
    assert _reads(b) == reads + 1  # built from PostgreSQL


async def test_a_build_that_read_the_product_before_a_change_is_not_shared(
    workers: list[Catalog],
) -> None:
    a, b = workers
    pid = await _product(a, "Before")
    _, gen = await a.store.shared_page(pid)  # a build notes the generation, then reads...
    old = await a._build(pid)
    await a.repo.write(pid, 1, uuid.uuid4().hex, _rename("After"))
    await _announce(a, pid)  # ...and the change is announced before it shares
    assert old.shared is not None
    await a._share(pid, old.shared, gen)
    assert await a.store.shared_page(pid) == (None, b"1")
    page = await b.page(pid)
    assert page is not None
    assert b'"title":"After"' in page.body
    blob, gen = await b.store.shared_page(pid)  # and that build is shared, at the new one
    assert blob is not None
    assert gen == b"1"
