"""The recommendation service on the real stack: orders, views and add-to-carts from Kafka
change "bought/viewed together", trending and the shopper's recent items in Redis within
seconds, once per event; a refund takes the order back out."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from devtools import catalog_gen, shoppers_gen
from nexuscart import auth, config, events
from nexuscart.adapters import kafka
from nexuscart.adapters.recs_registry import ModelRegistry
from nexuscart.adapters.recs_signals import VIEWS_BACKLOG_MAX, VIEWS_MAX, SignalPublisher
from nexuscart.adapters.recs_store import EXP_KEY, ExperimentStore, RecsStore, Signal
from nexuscart.app.recommendations import Arm, Experiment, RecsEnvelope, each_signal
from nexuscart.domain import recs as rules
from services.recommendations import model as m
from services.recommendations import train
from services.recommendations.bootstrap import main as service_main
from tests.conftest import EdgeServer
from tests.envelopes import placed_order

FRESH_S = 5.0
_enc = msgspec.json.Encoder()


def _env(data: Any, key: int, event_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "id": str(event_id or uuid.uuid4()),
        "type": type(data).__name__,
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "key": str(key),
        "data": msgspec.to_builtins(data) | {"type": type(data).__name__},
    }


def _product(pid: int, category: int, skus: Sequence[str] = ()) -> events.ProductCreated:
    now = int(time.time() * 1000)
    variants = [events.VariantData(s, 1000, "USD", {}, 0, 5) for s in skus]
    return events.ProductCreated(
        events.ProductData(
            pid, 900_001, category, f"P{pid}", "", "B", {}, [], "active", 1, 0.0, variants, now, now
        )
    )


class Service:
    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.producer = kafka.producer(settings.kafka, "test-recs")
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def send(self, topic: str, env: dict[str, Any]) -> None:
        await self.producer.send_and_wait(topic, _enc.encode(env), key=env["key"].encode())


@pytest.fixture
async def service(settings: config.Settings, migrated: None) -> AsyncIterator[Service]:
    s = Service(settings)
    await kafka.ensure_topics(settings.kafka.bootstrap, list(
        (events.ORDERS_TOPIC, events.CATALOG_TOPIC, events.INTERACTIONS_TOPIC)))  # fmt: skip
    await s.producer.start()
    s.task = asyncio.ensure_future(service_main(s.stop))
    try:
        yield s
    finally:
        s.stop.set()
        await s.task
        await s.producer.stop()


async def _until(check: Any, seconds: float) -> float:
    """Seconds until ``check()`` is true; raises when it is not within ``seconds``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if await check():
            return time.monotonic() - t0
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


async def _two_products(
    service: Service, store: RecsStore, category: int
) -> tuple[int, int, int, int]:
    """(base id, product a, product b, a shopper): a and b announced on catalog.v1 in
    ``category`` and known to the service (its consumer joined its group and caught up)."""
    base = random.randrange(10**6, 10**9) * 10
    a, b, user = base + 1, base + 2, random.randrange(10**6, 10**9)
    for pid in (a, b):
        await service.send(events.CATALOG_TOPIC, _env(_product(pid, category), pid))

    async def known() -> bool:
        return (await store.categories([a, b])) == [category, category]

    await _until(known, 60)
    return base, a, b, user


async def test_an_order_changes_bought_together_within_5_seconds(
    service: Service, redis_client: aioredis.Redis
) -> None:
    store = RecsStore(redis_client)
    base, a, b, user = await _two_products(service, store, 77)
    order = placed_order(user, base, (
        events.OrderLine(sku="SKU-X-1", product_id=a, quantity=1, unit_price_minor=1000),
        events.OrderLine(sku="SKU-X-2", product_id=b, quantity=2, unit_price_minor=500),
    ))  # fmt: skip
    await service.send(events.ORDERS_TOPIC, _env(order, user))

    async def together() -> bool:
        return [p for p, _ in await store.bought_together(a)] == [b]

    await _until(together, FRESH_S)
    assert [p for p, _ in await store.bought_together(b)] == [a]
    assert await store.bought(user) == {a, b}
    assert set(await store.recent(user)) == {a, b}
    assert {p for p, _ in await store.trending(77)} >= {a, b}


async def test_a_redelivered_event_counts_once_and_a_refund_takes_the_order_out(
    service: Service, redis_client: aioredis.Redis
) -> None:
    store = RecsStore(redis_client)
    base = random.randrange(10**6, 10**9) * 10
    a, b, user = base + 1, base + 2, random.randrange(10**6, 10**9)
    for pid, sku in ((a, f"SKU-R-{a}"), (b, f"SKU-R-{b}")):
        await service.send(events.CATALOG_TOPIC, _env(_product(pid, 78, [sku]), pid))

    async def known() -> bool:
        return (await store.products_of_skus([f"SKU-R-{b}"])) == [b]

    await _until(known, 60)
    viewed = _env(events.ProductViewed(user, a, int(time.time() * 1000)), user)
    reserved = _env(events.StockReserved(base, 5, user, f"SKU-R-{b}", 1, 900, "USD", 0), user)
    second = placed_order(user, base + 3, (
        events.OrderLine(sku=f"SKU-R-{a}", product_id=a, quantity=1, unit_price_minor=1000),
    ))  # fmt: skip
    for env in (viewed, viewed, reserved, reserved):  # each delivered twice
        await service.send(events.INTERACTIONS_TOPIC if env is viewed else events.ORDERS_TOPIC, env)
    await service.send(events.ORDERS_TOPIC, _env(second, user))

    async def cobought() -> bool:
        return [p for p, _ in await store.bought_together(a)] == [b]

    await _until(cobought, FRESH_S)
    # the view and the reservation once each: b viewed-together with a by weight 5 (order)
    # + a's own order pairing back; the duplicate changed nothing
    assert dict(await store.bought_together(a)) == {b: 1.0}
    assert await store.bought(user) == {a, b}
    refund = events.PaymentRefunded(base + 3, None, user, "pay", 1000, 1000, "admin")
    await service.send(events.ORDERS_TOPIC, _env(refund, user))

    async def refunded() -> bool:
        return await store.bought(user) == {b}

    await _until(refunded, FRESH_S)


async def test_a_batch_of_views_delivered_twice_counts_each_view_once(
    service: Service, redis_client: aioredis.Redis
) -> None:
    store = RecsStore(redis_client)
    category = random.randrange(10**6, 10**9)
    _, a, b, user = await _two_products(service, store, category)
    now = int(time.time() * 1000)
    views = [events.View(user, a, now), events.View(None, a, now + 1), events.View(user, b, now)]
    batch = _env(events.ProductsViewed(views), 0)
    later = random.randrange(10**6, 10**9)  # a last view on the same partition (key "0")
    for env in (batch, batch, _env(events.ProductsViewed([events.View(later, b, now)]), 0)):
        await service.send(events.INTERACTIONS_TOPIC, env)

    async def after_both() -> bool:
        return await store.recent(later) == [b]

    await _until(after_both, FRESH_S)
    assert set(await store.recent(user)) == {a, b}
    w = rules.KIND_WEIGHT[rules.KINDS.index("view")]
    once = {a: rules.trend_increment(w, now) + rules.trend_increment(w, now + 1),
            b: 2 * rules.trend_increment(w, now)}  # fmt: skip
    assert dict(await store.trending(category)) == pytest.approx(once)


def test_a_flush_publishes_its_views_in_one_record_and_its_add_to_carts_in_another() -> None:
    def principal(authorization: str | None) -> tuple[int, int]:
        if authorization != "Bearer good":
            raise ValueError("invalid token")
        return 42, 0

    told: list[int] = []
    pub = SignalPublisher(
        config.KafkaSettings("127.0.0.1:1"), principal, kafka.producer, on_dropped=told.append
    )
    for i in range(VIEWS_MAX + 5):
        pub.view(i, "Bearer good" if i % 2 else ("Bearer forged" if i % 3 else None))
    pub.added_to_cart(7, 1, "SKU-1", 2)
    pub.added_to_cart(8, 2, "SKU-2", 1)
    records = pub._envelopes()
    assert [k for k, _ in records] == [pub.key.encode()] * 2
    envs = [msgspec.json.decode(v, type=events.InteractionEnvelope) for _, v in records]
    views, carts = envs[0].data, envs[1].data
    assert isinstance(views, events.ProductsViewed)
    assert isinstance(carts, events.AddedToCarts)
    assert [(c.user_id, c.sku, c.quantity) for c in carts.adds] == [
        (7, "SKU-1", 2),
        (8, "SKU-2", 1),
    ]
    assert [(v.user_id, v.product_id) for v in views.views] == [
        (42 if i % 2 else None, i) for i in range(VIEWS_MAX)
    ]
    assert pub.dropped_views == 5
    # Kafka down (records waiting): the views of a flush are dropped, add-to-carts still wait
    pub._outbox = [(b"7", b"{}")] * VIEWS_BACKLOG_MAX
    pub.view(1, None)
    pub.added_to_cart(7, 1, "SKU-1", 1)
    (kept,) = pub._envelopes()
    assert isinstance(msgspec.json.decode(kept[1], type=events.InteractionEnvelope).data,
                      events.AddedToCarts)  # fmt: skip
    assert pub.dropped_views == 6
    pub._tell_dropped()
    pub._tell_dropped()
    assert told == [6]  # the metric, once per flush
    assert pub.dropped_views == 0


def test_each_item_of_a_batch_gets_an_id_of_its_own_that_a_redelivery_repeats() -> None:
    now = datetime.now(UTC)
    views = events.ProductsViewed([events.View(1, 10, 5), events.View(None, 11, 6)])
    add = events.AddedToCart(1, 10, "SKU-1", 2, 7)
    envs = [
        RecsEnvelope(uuid.uuid4(), "ProductsViewed", 1, now, "0", views),
        RecsEnvelope(uuid.uuid4(), "AddedToCarts", 1, now, "0", events.AddedToCarts([add])),
    ]
    first, again = list(each_signal(envs)), list(each_signal(envs))
    assert [(e.type, e.data) for e in first] == [
        ("ProductViewed", events.ProductViewed(1, 10, 5)),
        ("ProductViewed", events.ProductViewed(None, 11, 6)),
        ("AddedToCart", add),
    ]
    assert [e.id for e in first] == [e.id for e in again]
    assert len({*(e.id for e in envs), *(e.id for e in first)}) == 5


# --- the edge's signals ----------------------------------------------------------------------


async def test_a_shoppers_views_and_add_to_cart_reach_their_recent_items(
    edge: EdgeServer, settings: config.Settings, service: Service, redis_client: aioredis.Redis
) -> None:
    await catalog_gen.load(settings.postgres.dsn, settings.redis.url, 30)
    viewed, carted = [p for p in catalog_gen.products(30) if p.status == "active"][:2]
    user = random.randrange(10**6, 10**9)
    tok = auth.issue(settings.auth.jwt_secret, user, roles=("customer",))
    head = {"authorization": f"Bearer {tok}"}
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as c:
        assert (await c.get(f"/products/{viewed.product_id}", headers=head)).status_code == 200
        line = {"product_id": carted.product_id, "sku": carted.variants[0].sku, "quantity": 1}
        r = await c.post(
            "/cart/items", json=line, headers={**head, "idempotency-key": uuid.uuid4().hex}
        )
        assert r.status_code == 200, r.text
    store = RecsStore(redis_client)

    async def both() -> bool:
        return set(await store.recent(user)) == {viewed.product_id, carted.product_id}

    # the edge flushes every 0.2 s; the consumer may still be joining its group
    await _until(both, 60)


async def test_outcomes_of_exposed_shoppers_count_for_their_arm(
    service: Service, redis_client: aioredis.Redis
) -> None:
    exps = ExperimentStore(redis_client)
    key = f"exp-{uuid.uuid4().hex[:8]}"
    exp = Experiment(key, [Arm("a", 5000), Arm("b", 5000, blend="popular")], 3600)
    await exps.define(msgspec.json.encode(exp))
    user, pid = random.randrange(10**6, 10**9), random.randrange(10**6, 10**9)
    now = int(time.time() * 1000)
    await exps.expose(key, user, "b", [pid], now, 3600)
    await service.send(events.INTERACTIONS_TOPIC, _env(events.ProductViewed(user, pid, now), user))
    cart = events.AddedToCart(user, pid, "SKU-O-1", 1, now + 1)
    await service.send(events.INTERACTIONS_TOPIC, _env(cart, user))
    line = events.OrderLine(sku="SKU-O-1", product_id=pid, quantity=1, unit_price_minor=1500)
    await service.send(events.ORDERS_TOPIC, _env(placed_order(user, pid, (line,)), user))

    async def counted() -> bool:  # two topics, two consumers: in either order
        _, stats, _ = await exps.results(key)
        return all(f"b:{k}" in stats for k in ("orders", "clicks", "carts"))

    try:
        await _until(counted, 60)
    finally:
        await redis_client.delete(EXP_KEY)  # the experiment must not outlive its test
    users, stats, revenue = await exps.results(key)
    assert users == {str(user): "b"}
    assert stats["b:orders"] == 1.0
    assert stats["b:clicks"] == 1.0  # the view of a shown product
    assert stats["b:carts"] == 1.0
    assert revenue == {str(user): 1400.0}  # the order's total after its 100 discount


async def log_shoppers(settings: config.Settings, redis_client: aioredis.Redis) -> None:
    """The generated catalog's first 60 products in PostgreSQL, and the signals of 150
    SYNTHETIC shoppers (user ids 700,000,000 + n) over them in ``redis_client``'s recs:log,
    ending now: small enough to train in seconds."""
    await catalog_gen.load(settings.postgres.dsn, settings.redis.url, 60)
    pop = shoppers_gen.generate(150, 60, seed=11)
    store = RecsStore(redis_client)
    base = int(time.time() * 1000) - pop.days * 86_400_000
    kinds = rules.KINDS
    signals = [
        Signal(uuid.uuid4().hex, kinds[k], base + t * 1000, 700_000_000 + u, [i + 1], [0])
        for u, i, t, k in zip(pop.events.user.tolist(), pop.events.item.tolist(),
                              pop.events.ts.tolist(), pop.events.kind.tolist(), strict=True)
    ]  # fmt: skip
    for a in range(0, len(signals), 500):
        await store.apply(signals[a : a + 500])


async def test_train_from_redis_learns_from_the_logged_signals_and_the_catalog(
    settings: config.Settings, migrated: None, redis_client: aioredis.Redis, capsys: Any
) -> None:
    await log_shoppers(settings, redis_client)
    cfg = m.Config(factors=8, als_iterations=3, ranker_rounds=10, candidates=10)
    assert await train.train_live(cfg, promote=False, no_save=False) == 0
    out = capsys.readouterr().out
    assert "recs:log" in out
    assert "saved " in out
    version = out.rsplit("saved ", 1)[1].split()[0].rstrip(",")
    meta = (await ModelRegistry(settings.recs.model_dir, redis_client).versions())[version]
    assert meta["data"]["source"] == "recs:log"
    assert meta["data"]["users"] >= 150  # and whatever the other tests logged
