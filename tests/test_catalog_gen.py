"""The catalog generator (devtools/catalog_gen.py): deterministic, realistic enough, skewed;
and its load into the real PostgreSQL and Redis."""

from __future__ import annotations

import collections

import asyncpg
import redis.asyncio as aioredis

from devtools import catalog_gen as gen
from nexuscart import config
from nexuscart.adapters.catalog_store import CatalogStore


def test_generator_is_deterministic_by_seed() -> None:
    assert list(gen.products(40, seed=3)) == list(gen.products(40, seed=3))
    assert gen.categories(3) == gen.categories(3)
    assert [p.title for p in gen.products(40, seed=3)] != [
        p.title for p in gen.products(40, seed=4)
    ]


def test_a_product_does_not_depend_on_the_catalog_size_but_its_popularity_does() -> None:
    small = {p.product_id: p for p in gen.products(20)}
    big = {p.product_id: p for p in gen.products(200)}
    for pid, p in small.items():
        assert (p.title, p.variants) == (big[pid].title, big[pid].variants)


def test_categories_form_a_tree_of_over_a_thousand() -> None:
    cats = gen.categories()
    assert len(cats) >= 1000
    ids = {c.category_id for c in cats}
    assert all(c.parent_id is None or c.parent_id in ids for c in cats)
    assert len({c.slug for c in cats}) == len(cats)
    assert sum(c.parent_id is None for c in cats) == 20


def test_products_are_plausible() -> None:
    ps = list(gen.products(2000))
    leaves = {c.category_id for c in gen.categories()} - {
        c.parent_id for c in gen.categories() if c.parent_id is not None
    }
    assert all(p.category_id in leaves for p in ps)
    assert all(1 <= len(p.variants) <= 4 for p in ps)
    assert all(v.price_minor > 0 and v.currency == "USD" for p in ps for v in p.variants)
    skus = [v.sku for p in ps for v in p.variants]
    assert len(skus) == len(set(skus))
    assert any(p.title.startswith("Apple iPhone") for p in ps)
    assert len({p.brand for p in ps}) > 100
    assert collections.Counter(p.status for p in ps)["active"] > 0.9 * len(ps)


def test_zipf_draws_are_skewed_toward_the_popular_products() -> None:
    z = gen.ZipfProducts(100_000)
    draws = z.sample(20_000)
    top = collections.Counter(draws).most_common(1)[0]
    assert top[0] == z.order[0]  # the most popular product is the most drawn
    assert top[1] > 0.05 * len(draws)  # 1/H(100k) ~ 8%: a handful of products take most views
    assert z.sample(100, seed=1) == z.sample(100, seed=1)


async def test_load_writes_the_catalog_once(settings: config.Settings, migrated: None) -> None:
    n = 60
    await gen.load(settings.postgres.dsn, settings.redis.url, n)
    assert await gen.load(settings.postgres.dsn, settings.redis.url, n) == 0  # idempotent
    expected = list(gen.products(n))
    conn = await asyncpg.connect(settings.postgres.dsn)
    client = aioredis.Redis.from_url(settings.redis.url)
    try:
        rows = await conn.fetch(
            "SELECT product_id, title FROM products WHERE product_id <= $1 ORDER BY 1", n
        )
        assert [(r[0], r[1]) for r in rows] == [(p.product_id, p.title) for p in expected]
        assert await conn.fetchval("SELECT count(*) FROM categories") >= 1000
        sku = expected[0].variants[0]
        owner = await conn.fetchval("SELECT product_id FROM skus WHERE sku = $1", sku.sku)
        assert owner == expected[0].product_id
        (level,) = await CatalogStore(client).levels([sku.sku])
        assert level is not None
        assert level.stock == sku.stock
    finally:
        await conn.close()
        await client.aclose()
