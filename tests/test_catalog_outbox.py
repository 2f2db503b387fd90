"""Catalog events travel from PostgreSQL's catalog outbox to Kafka (services/outbox_relay/
catalog.py), at least once and once per event id across a relay crash; a consumer folding
catalog.v1 converges to the database (real PostgreSQL, real Kafka). Also the repository's
SKU claims (real PostgreSQL)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from nexuscart import config, events
from nexuscart.adapters import kafka, postgres
from nexuscart.adapters.catalog_repo import (
    CatalogRepo,
    Change,
    OutboxRow,
    Product,
    SkuTaken,
    VariantFields,
)
from nexuscart.adapters.catalog_store import CatalogStore, StockLevel
from nexuscart.domain import catalog as rules
from services.outbox_relay.catalog import CatalogOutboxRelay


@pytest.fixture
async def repo(settings: config.Settings, migrated: None) -> AsyncIterator[CatalogRepo]:
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> asyncpg.Pool:
        return pool

    yield CatalogRepo(pg)
    await pool.close()


def _change(title: str, skus: Sequence[str]) -> Change:
    return Change(
        title=title,
        description="",
        brand="Acme",
        category_id=1,
        attributes={},
        images=[],
        status="active",
        new_variants=[VariantFields(s, 1000, "USD", {}, 5) for s in skus],
        event="ProductCreated",
    )


async def new_product(repo: CatalogRepo, n_variants: int = 2) -> Product:
    key = uuid.uuid4().hex
    pid = rules.created_product_id(424_242, key)
    skus = [f"OB-{uuid.uuid4().hex[:10]}" for _ in range(n_variants)]
    await repo.claim_skus(pid, skus)
    product, replayed = await repo.create(pid, 424_242, _change("Outbox thing", skus), "fp")
    assert not replayed
    return product


async def catalog_events_on(
    settings: config.Settings, products: set[int], until: int
) -> list[events.CatalogEnvelope]:
    """Every catalog.v1 record of ``products`` from the start, until ``until`` distinct
    event ids were seen (or a minute passed), then one more poll for late repeats."""
    consumer = AIOKafkaConsumer(
        events.CATALOG_TOPIC,
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen: list[events.CatalogEnvelope] = []
    deadline = time.monotonic() + 60
    try:
        done = False
        while time.monotonic() < deadline and not done:
            if len({e.id for e in seen}) >= until:
                done = True  # one more poll below, for repeats
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    with contextlib.suppress(msgspec.DecodeError):
                        env = events.decode_catalog(r.value)
                        if int(env.key) in products:
                            assert r.key == env.key.encode()
                            seen.append(env)
    finally:
        await consumer.stop()
    return seen


class DiesBeforeDeleting(CatalogRepo):
    async def outbox_delete(self, rows: Sequence[OutboxRow]) -> None:
        raise ConnectionResetError("relay died before deleting")


async def test_catalog_events_reach_kafka_and_a_consumer_converges_to_the_database(
    settings: config.Settings, repo: CatalogRepo
) -> None:
    await kafka.ensure_topics(settings.kafka.bootstrap, [events.CATALOG_TOPIC])
    products = [await new_product(repo) for _ in range(4)]
    for p in products:  # a few writes and adjustments each
        for n in range(3):
            current = await repo.product(p.product_id)
            assert current is not None

            def rename(cur: Product, n: int = n) -> Change:
                c = _change(f"Renamed {n}", [])
                c.event = "ProductUpdated"
                return c

            await repo.write(p.product_id, current.version, uuid.uuid4().hex, rename)
        sku = p.variants[0].sku
        for delta in (10, -6, 3):
            await repo.adjust_stock(
                p.product_id, sku, uuid.uuid4(), delta, "restock", "", 1, lambda _: None
            )
    producer = kafka.producer(settings.kafka, "test-catalog-relay")
    await producer.start()
    try:
        with pytest.raises(ConnectionResetError):
            await CatalogOutboxRelay(DiesBeforeDeleting(repo.pool), producer).run_once()
        relay = CatalogOutboxRelay(repo, producer)
        while await relay.run_once():
            pass
    finally:
        await producer.stop()
    ids = {p.product_id for p in products}
    pool = await repo.pool()
    left = await pool.fetchval(
        "SELECT count(*) FROM catalog_outbox WHERE product_id = ANY($1::bigint[])", list(ids)
    )
    assert left == 0
    # per product: created, 3 updates, 3 adjustments, one StockLow (stock 0, 10, 4, 7)
    expected = len(products) * (1 + 3 + 3 + 1)
    seen = await catalog_events_on(settings, ids, expected)
    unique = {e.id: e for e in seen}
    assert len(unique) == expected
    # a consumer keeping the newest version of each product and stock of each SKU (repeats
    # and any order across partitions) ends where the database is
    state: dict[int, events.ProductData] = {}
    stock: dict[str, tuple[int, int]] = {}
    for e in unique.values():
        d = e.data
        if isinstance(d, (events.ProductCreated, events.ProductUpdated, events.ProductArchived)):
            have = state.get(d.product.product_id)
            if have is None or have.version < d.product.version:
                state[d.product.product_id] = d.product
        elif isinstance(d, events.StockAdjusted) and stock.get(d.sku, (-1, 0))[0] < d.stock_version:
            stock[d.sku] = (d.stock_version, d.stock_after)
    for p in products:
        db = await repo.product(p.product_id)
        assert db is not None
        assert state[p.product_id].version == db.version
        assert state[p.product_id].title == db.title
        v = db.variants[0]
        assert stock[v.sku] == (v.stock_version, v.stock)
    lows = [e for e in unique.values() if e.type == "StockLow"]
    assert len(lows) == len(products)  # 0 -> 10 -> 4 (crossing) -> 7 (still low)


async def test_a_sku_claim_is_exclusive_and_an_orphan_is_taken_over(repo: CatalogRepo) -> None:
    sku = f"CL-{uuid.uuid4().hex[:10]}"
    await repo.claim_skus(1_000_001, [sku])
    await repo.claim_skus(1_000_001, [sku])  # its own: fine
    with pytest.raises(SkuTaken):  # too recent to be an orphan: its write may be in flight
        await repo.claim_skus(1_000_002, [sku])
    pool = await repo.pool()
    await pool.execute("UPDATE skus SET claimed_at = now() - interval '1 hour' WHERE sku = $1", sku)
    await repo.claim_skus(1_000_002, [sku])  # 1_000_001 never got the variant
    assert await pool.fetchval("SELECT product_id FROM skus WHERE sku = $1", sku) == 1_000_002
    p = await new_product(repo, 1)
    await pool.execute(
        "UPDATE skus SET claimed_at = now() - interval '1 hour' WHERE sku = $1", p.variants[0].sku
    )
    with pytest.raises(SkuTaken):  # a real variant's SKU is never taken over
        await repo.claim_skus(1_000_003, [p.variants[0].sku])


async def test_the_relay_completes_the_redis_side_of_changes_whose_writer_died(
    settings: config.Settings, repo: CatalogRepo
) -> None:
    """Changes committed without their Redis side (the repository alone, as an edge worker
    that died right after its commit leaves them): the relay writes each SKU's newest level
    and announces each product on the change stream before sending the batch."""
    await kafka.ensure_topics(settings.kafka.bootstrap, [events.CATALOG_TOPIC])
    client = aioredis.Redis.from_url(settings.redis.url)
    store = CatalogStore(client)
    p = await new_product(repo, 1)
    sku = p.variants[0].sku
    head = await store.changes_head()
    for delta in (12, -5):
        await repo.adjust_stock(
            p.product_id, sku, uuid.uuid4(), delta, "count", "", 1, lambda _: None
        )
    await store.set_levels([(sku, StockLevel(0, 0, 5))])  # what Redis had before
    producer = kafka.producer(settings.kafka, "test-catalog-relay-redis")
    await producer.start()
    try:
        relay = CatalogOutboxRelay(repo, producer, store)
        while await relay.run_once():
            pass
        (level,) = await store.levels([sku])
        db = await repo.product(p.product_id)
        assert db is not None
        assert level == StockLevel(db.variants[0].stock_version, 7, 5)
        _, changed = await store.read_changes(head, block_ms=100, count=100_000)
        assert p.product_id in changed
    finally:
        await producer.stop()
        await client.aclose()
