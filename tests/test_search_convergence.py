"""The search index converges to the catalog: after any sequence of catalog writes (made
through the catalog's own use cases, relayed from its PostgreSQL outbox to Kafka by the
real relay), a real follower (rebuild, then catalog.v1) ends with exactly the active
products of the database, with their titles, cheapest prices and stock status.

The bound: the test waits at most CONVERGE_S (docs/search.md states ~1 s p99 end to end;
the wait is generous for a loaded CI machine, it is not a timing assert)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from devtools import catalog_gen
from nexuscart import config, events
from nexuscart.adapters import kafka, postgres
from nexuscart.adapters.catalog_repo import CatalogRepo
from nexuscart.adapters.catalog_store import CatalogStore
from nexuscart.adapters.search_source import PgCatalogSource
from nexuscart.app import catalog as cat
from nexuscart.app.search import Search
from nexuscart.domain.search import SearchQuery
from services.outbox_relay.catalog import CatalogOutboxRelay
from services.search.follower import follow

CONVERGE_S = 20.0
WORDS = ["lamp", "kettle", "anvil", "teapot", "drone", "hammock"]


@dataclass
class World:
    runner: asyncio.Runner
    catalog: cat.Catalog
    repo: CatalogRepo
    search: Search
    category: int


@pytest.fixture(scope="module")
def world(settings: config.Settings, migrated: None) -> Iterator[World]:
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    stop = asyncio.Event()

    async def start() -> tuple[Any, ...]:
        await catalog_gen.load(settings.postgres.dsn, settings.redis.url, 50)  # the tree
        pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

        async def pg() -> Any:
            return pool

        client = aioredis.Redis.from_url(settings.redis.url)
        repo = CatalogRepo(pg)
        catalog = cat.Catalog(repo, CatalogStore(client), cat.PageCache(1.0, 100))
        producer = kafka.producer(settings.kafka, "search-test-relay")
        await producer.start()
        search = Search()
        tasks = [
            asyncio.ensure_future(CatalogOutboxRelay(repo, producer).run(stop)),
            asyncio.ensure_future(follow(settings, search, PgCatalogSource(pg), stop)),
        ]
        deadline = time.monotonic() + 60
        while not search.ready:  # the follower's first rebuild
            assert time.monotonic() < deadline, "the follower never built the index"
            await asyncio.sleep(0.1)
        return pool, client, producer, tasks, catalog, repo, search

    pool, client, producer, tasks, catalog, repo, search = runner.run(start())
    leaf = max(c.category_id for c in catalog_gen.categories())
    try:
        yield World(runner, catalog, repo, search, leaf)
    finally:
        stop.set()

        async def close() -> None:
            await asyncio.gather(*tasks, return_exceptions=True)
            await producer.stop()
            await client.aclose()
            await pool.close()

        runner.run(close())
        runner.close()


# an operation on the i-th product of the run (modulo how many exist)
ops = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(["active", "draft"]), st.integers(100, 99_999)),
    st.tuples(st.just("title"), st.integers(0, 9), st.sampled_from(WORDS)),
    st.tuples(st.just("status"), st.integers(0, 9), st.sampled_from(["active", "draft"])),
    st.tuples(st.just("price"), st.integers(0, 9), st.integers(100, 99_999)),
    st.tuples(st.just("stock"), st.integers(0, 9), st.integers(-3, 5).filter(bool)),
    st.tuples(st.just("archive"), st.integers(0, 9), st.just(0)),
)


async def run_ops(w: World, tag: str, seller: int, program: list[tuple[Any, ...]]) -> list[int]:
    caller = cat.Caller(user_id=seller, is_admin=False)
    made: list[tuple[int, str]] = []  # (product id, sku)
    for n, (op, a, b) in enumerate(program):
        key = f"{tag}-{n}"
        try:
            if op == "create" or not made:
                sku = f"SKU-{tag}-{n}"
                body = cat.ProductCreate(
                    category_id=w.category,
                    title=f"{tag} {WORDS[n % len(WORDS)]}",
                    brand="Testbrand",
                    status=a if op == "create" else "active",
                    variants=[cat.VariantCreate(sku, b if op == "create" else 500, "USD")],
                )
                view, _, _ = await w.catalog.create(caller, body, key)
                made.append((view.product_id, sku))
                continue
            pid, sku = made[a % len(made)]
            version = (await w.repo.product(pid)).version  # type: ignore[union-attr]
            if op == "title":
                patch = cat.ProductPatch(title=f"{tag} {b}")
                await w.catalog.update(caller, pid, version, key, patch)
            elif op == "status":
                await w.catalog.update(caller, pid, version, key, cat.ProductPatch(status=b))
            elif op == "price":
                vp = cat.VariantPatch(price_minor=b)
                await w.catalog.update_variant(caller, pid, sku, version, key, vp)
            elif op == "stock":
                adj = cat.StockAdjustment(delta=b, reason="correction" if b < 0 else "restock")
                await w.catalog.adjust_stock(caller, pid, sku, key, adj)
            elif op == "archive":
                await w.catalog.archive(caller, pid, version, key)
        except cat.Refused:
            pass  # a write the rules refuse (archived is final, stock below 0): no change
    return [pid for pid, _ in made]


async def expected(w: World, pids: list[int]) -> dict[int, tuple[str, int, bool]]:
    out = {}
    for pid in pids:
        p = await w.repo.product(pid)
        if p is not None and p.status == "active" and p.variants:
            cheapest = min(v.price_minor for v in p.variants)
            out[pid] = (p.title, cheapest, any(v.stock > 0 for v in p.variants))
    return out


def indexed(w: World, tag: str) -> dict[int, tuple[str, int, bool]]:
    page = w.search.search(SearchQuery(q=tag, limit=50))
    return {h.product_id: (h.title, h.price_min, h.in_stock) for h in page.items}


@given(program=st.lists(ops, min_size=3, max_size=14))
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],  # a failing program is printed as it is
)
def test_the_index_converges_to_the_catalog_after_any_writes(
    world: World, program: list[tuple[Any, ...]]
) -> None:
    tag = "t" + uuid.uuid4().hex[:10]  # a word only this run's titles have
    seller = 800_000 + int(tag[1:7], 16) % 99_999
    pids = world.runner.run(run_ops(world, tag, seller, program))
    want = world.runner.run(expected(world, pids))
    deadline = time.monotonic() + CONVERGE_S
    while (got := indexed(world, tag)) != want:
        assert time.monotonic() < deadline, f"index {got} != database {want}"
        world.runner.run(asyncio.sleep(0.05))


def test_poison_events_are_dead_lettered_and_the_follower_goes_on(world: World) -> None:
    """An event whose key is not its product, and a record that is not JSON, can never be
    applied: the ConsumerLoop parks them on catalog.v1.dlq and later events still reach
    the index."""
    poison = (
        b'{"id":"%s","type":"ProductUpdated","version":1,'
        % str(uuid.uuid4()).encode()
        + b'"occurred_at":"2026-01-01T00:00:00Z","key":"999","data":{"type":'
        b'"ProductUpdated","product":{"product_id":12345,"seller_id":1,"category_id":1,'
        b'"title":"x","description":"","brand":"","attributes":{},"images":[],'
        b'"status":"active","version":1,"popularity":0,"variants":[],'
        b'"created_at_ms":0,"updated_at_ms":0}}}'
    )
    garbage = b"not json " + uuid.uuid4().hex.encode()
    s = config.load()

    async def send() -> None:
        producer = kafka.producer(s.kafka, "search-test-poison")
        await producer.start()
        try:
            await producer.send_and_wait(events.CATALOG_TOPIC, poison, key=b"999")
            await producer.send_and_wait(events.CATALOG_TOPIC, garbage, key=b"1")
        finally:
            await producer.stop()

    async def parked(within_s: float) -> set[bytes]:
        """Values on the dead-letter topic that a search follower parked."""
        topic = events.dead_letter_topic(events.CATALOG_TOPIC)
        consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka.bootstrap, group_id=None)
        producer = kafka.producer(s.kafka, "search-test-dlq-reader")
        await consumer.start()
        await producer.start()
        found: set[bytes] = set()
        try:
            tps = [TopicPartition(topic, p) for p in await producer.partitions_for(topic)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + within_s
            while {poison, garbage} - found and time.monotonic() < deadline:
                for recs in (await consumer.getmany(timeout_ms=200)).values():
                    for r in recs:
                        who = dict(r.headers or ()).get("dlq.consumer", b"")
                        if who.startswith(b"search-"):
                            found.add(r.value)
        finally:
            await consumer.stop()
            await producer.stop()
        return found

    world.runner.run(send())
    tag = "p" + uuid.uuid4().hex[:10]
    pids = world.runner.run(run_ops(world, tag, 801_234, [("create", "active", 700)]))
    want = world.runner.run(expected(world, pids))
    deadline = time.monotonic() + CONVERGE_S
    while indexed(world, tag) != want:
        assert time.monotonic() < deadline
        world.runner.run(asyncio.sleep(0.05))
    assert {poison, garbage} <= world.runner.run(parked(CONVERGE_S))
