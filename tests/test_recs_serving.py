"""Serving on the real stack: the worker's availability snapshot and the shopper's bought
items never let an archived, out-of-stock or bought (durable) item through (property test
over the real scripts), and a product that goes out of stock or is archived leaves the
answers within the snapshot's bound; the routes answer from a promoted model, explain with
TreeSHAP contributions, switch and roll back without a restart; a cart's recommendations
come from its products' neighbours and never name them."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis.asyncio as aioredis
import uvloop
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devtools import catalog_gen
from nexuscart import auth, config, tasks
from nexuscart.adapters.catalog_store import CatalogStore, StockLevel
from nexuscart.adapters.recs_registry import ModelRegistry
from nexuscart.adapters.recs_store import EXP_KEY, Cursors, Item, RecsStore
from nexuscart.adapters.reservations import Line, Placed, ReservationStore
from nexuscart.app.errors import Unavailable
from nexuscart.app.recommendations import Availability, Recommender
from nexuscart.domain import recs as rules
from services.recommendations import model as m
from services.recommendations import train
from tests.conftest import ROOT, EdgeServer
from tests.test_cart_http import h, make_product, token

N_ITEMS = 12


@pytest.fixture(scope="module")
def loop(settings: config.Settings) -> Iterator[asyncio.Runner]:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        yield runner


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    status=st.lists(
        st.sampled_from(["active", "archived", "draft"]), min_size=N_ITEMS, max_size=N_ITEMS
    ),
    stock=st.lists(st.integers(-2, 3), min_size=N_ITEMS, max_size=N_ITEMS),
    bought=st.sets(st.integers(0, N_ITEMS - 1)),
    consumable=st.sets(st.integers(0, N_ITEMS - 1)),
    context=st.integers(0, N_ITEMS - 1),
    neighbours=st.sets(st.integers(0, N_ITEMS - 1)),
    bought_whole_max=st.sampled_from([0, 3, 64]),
)
# a heavy buyer's (more bought than come back whole) durables reach only as candidates
@example(
    status=["active"] * N_ITEMS,
    stock=[1] * N_ITEMS,
    bought={1, 2, 3, 4, 5},
    consumable=set(),
    context=0,
    neighbours=set(),
    bought_whole_max=3,
)
def test_the_filter_never_serves_archived_out_of_stock_or_bought_durables(
    loop: asyncio.Runner, settings: config.Settings, status: list[str], stock: list[int],
    bought: set[int], consumable: set[int], context: int, neighbours: set[int],
    bought_whole_max: int,
) -> None:  # fmt: skip
    """Items reach the answer as live neighbours of the context product or as candidates
    of the model's list; the shopper's bought set comes back whole when small, else is
    checked against both (``bought_whole_max`` makes every size take either way)."""

    async def check() -> None:
        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            store = RecsStore(client)
            store.bought_whole_max = bought_whole_max
            # fresh ids per example from the OS (hypothesis seeds `random` per example, and
            # its replays must not find an earlier example's keys)
            base = secrets.randbelow(10**9) * 100 + 10**8
            user = secrets.randbelow(10**9) + 10**6
            pids = [base + n for n in range(N_ITEMS)]
            # the levels first: the product records' announcement makes the snapshot read both
            await client.mset({f"cat:stk:SKU-F-{p}": f"1:{stock[n]}:0" for n, p in enumerate(pids)})
            await store.put_items([
                Item(p, 5, status[n], [f"SKU-F-{p}"], n in consumable) for n, p in enumerate(pids)
            ])  # fmt: skip
            if bought:
                await client.sadd(f"recs:bought:{user}", *[pids[n] for n in bought])
            if neighbours:
                await client.zadd(
                    f"recs:covis:{pids[context]}", {str(pids[n]): 1.0 for n in neighbours}
                )
            recs = Recommender(store, None)
            await _caught_up(recs.availability)
            ok = {
                p for n, p in enumerate(pids)
                if n != context and rules.eligible(status[n], stock[n], n in bought,
                                                   n in consumable)
            }  # fmt: skip
            for _ in range(2):  # the second time, a heavy buyer's candidates go at once
                served = await recs.candidates(user, [pids[context]], pids, 50, 50)
                got = {p for p, *_ in served.items}
                assert got == ok, (status, stock, bought, consumable, context, served)
        finally:
            await client.aclose()

    loop.run(check())


def test_the_filter_uses_the_checkouts_available_stock(
    loop: asyncio.Runner, settings: config.Settings
) -> None:
    """Stock reserved or sold by everyday checkouts is not available: the checkout's copy
    (on_hand - reserved - sold) decides, unless the catalog's level is a newer version."""

    async def check() -> None:
        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            store = RecsStore(client)
            base = secrets.randbelow(10**9) * 100 + 10**8
            pids = [base + n for n in range(4)]
            await client.mset({f"cat:stk:SKU-A-{p}": "3:2:0" for p in pids})
            await client.mset({
                f"{{co}}:s:SKU-A-{pids[0]}": "3:2:1:1",  # all reserved or sold
                f"{{co}}:s:SKU-A-{pids[1]}": "3:2:1:0",  # one left
                f"{{co}}:s:SKU-A-{pids[2]}": "2:0:0:0",  # older than the catalog's restock
            })  # fmt: skip
            await store.put_items([Item(p, 5, "active", [f"SKU-A-{p}"], False) for p in pids])
            recs = Recommender(store, None)
            await _caught_up(recs.availability)
            served = await recs.candidates(0, [], pids, 10, 10)
            assert [p for p, *_ in served.items] == pids[1:]
        finally:
            await client.aclose()

    loop.run(check())


def test_a_checkout_announces_the_products_it_sells_out_and_no_other(
    loop: asyncio.Runner, settings: config.Settings
) -> None:
    """The snapshot reads (no sweep) see the product whose last unit a checkout reserved,
    as unavailable, and nothing of an order that leaves units: the workers read the
    sell-outs, not every order (each order read held Redis in front of the checkouts)."""

    async def check() -> None:
        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            store = RecsStore(client)
            base = secrets.randbelow(10**9) * 100 + 10**8
            last, plenty = base, base + 1
            await CatalogStore(client, mirror=ReservationStore(client).mirror_levels).set_levels(
                [(f"SKU-O-{last}", StockLevel(1, 2, 0)), (f"SKU-O-{plenty}", StockLevel(1, 9, 0))]
            )
            await store.put_items(
                [Item(p, 5, "active", [f"SKU-O-{p}"], False) for p in (last, plenty)]
            )
            cursors = (await store.availability(Cursors(), "0", 0, 500)).cursors
            placed = await ReservationStore(client).checkout(
                user_id=6, idem=secrets.token_hex(8), fingerprint="f",
                lines=[Line(f"SKU-O-{last}", last, 2, 100, 1, 2),
                       Line(f"SKU-O-{plenty}", plenty, 2, 100, 1, 9)],
                currency="EUR", subtotal_minor=400, discount_minor=0, total_minor=400,
                promo_code=None, ttl_ms=60_000, event_id=str(uuid.uuid4()),
                occurred_at="2026-01-01T00:00:00Z",
            )  # fmt: skip
            assert isinstance(placed, Placed), placed
            got = await store.availability(cursors, "0", 0, 500)
            assert [f for f in got.flags if f[0] in (last, plenty)] == [(last, 0)]
        finally:
            await client.aclose()

    loop.run(check())


async def _caught_up(avail: Availability) -> None:
    """Reads until the snapshot is whole and has every change announced so far."""
    while True:
        started = time.monotonic()
        if await avail.poll() and avail.loaded:
            break
    avail.fresh_at = started


def test_an_item_out_of_stock_or_archived_stops_being_recommended_within_the_bound(
    loop: asyncio.Runner, settings: config.Settings
) -> None:
    """Three products leave the snapshot through the three writers that announce it: an
    everyday checkout reserves the last unit of one, the catalog sets another's stock to 0,
    the recommendation service records a third as archived. Once the bound has passed since
    the writes, each is out of every answer, or the worker refuses to answer (a snapshot
    older than the bound answers 503), never served."""
    bound = 0.3  # RECS_STOCK_MAX_AGE_S, short for the test

    async def check() -> None:
        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            store = RecsStore(client)
            base = secrets.randbelow(10**9) * 100 + 10**8
            reserved, zeroed, archived, kept = pids = [base + n for n in range(4)]
            catalog = CatalogStore(client, mirror=ReservationStore(client).mirror_levels)
            await catalog.set_levels([(f"SKU-B-{p}", StockLevel(1, 1, 0)) for p in pids])
            await store.put_items([Item(p, 5, "active", [f"SKU-B-{p}"], False) for p in pids])
            avail = Availability(store, max_age_s=bound)
            await _caught_up(avail)
            assert set(pids) <= avail.allowed
            task = asyncio.ensure_future(avail.run())
            try:
                placed = await ReservationStore(client).checkout(
                    user_id=5, idem=secrets.token_hex(8), fingerprint="f",
                    lines=[Line(f"SKU-B-{reserved}", reserved, 1, 100, 1, 1)], currency="EUR",
                    subtotal_minor=100, discount_minor=0, total_minor=100, promo_code=None,
                    ttl_ms=60_000, event_id=str(uuid.uuid4()), occurred_at="2026-01-01T00:00:00Z",
                )  # fmt: skip
                assert isinstance(placed, Placed), placed
                await catalog.set_levels([(f"SKU-B-{zeroed}", StockLevel(2, 0, 0))])
                await catalog.publish_changed(zeroed)
                await store.put_items([Item(archived, 5, "archived", [f"SKU-B-{archived}"], False)])
                await asyncio.sleep(bound)
                recs = Recommender(store, None)
                recs.availability = avail
                try:
                    served = await recs.candidates(0, [], pids, 10, 10)
                except Unavailable:
                    return  # refusing past the bound keeps the guarantee too
                assert [p for p, *_ in served.items] == [kept]
            finally:
                await tasks.stop(task)
        finally:
            await client.aclose()

    loop.run(check())


# --- the routes ------------------------------------------------------------------------------

SYNTH_USERS = 400


async def _no_experiment(client: aioredis.Redis) -> None:
    await client.delete(EXP_KEY)


@pytest.fixture(scope="module")
def registry_versions(settings: config.Settings, loop: asyncio.Runner) -> Iterator[list[str]]:
    """Two versions of a small SYNTHETIC model in the registry the edge reads, with their
    products live in Redis (active, in stock) as the consumer and the catalog keep them."""
    cfg = m.Config(factors=16, als_iterations=4, ranker_rounds=20, candidates=20)
    model, cat, product_ids, info = train.fit(SYNTH_USERS * 33, 300, 7, cfg)
    arrays = m.to_arrays(model, cat, product_ids, np.arange(1, info["users"] + 1))
    client = aioredis.Redis.from_url(settings.redis.url)
    reg = ModelRegistry(Path(ROOT) / settings.recs.model_dir, client)
    before = loop.run(reg.active())

    async def setup() -> list[str]:
        store = RecsStore(client)
        # the levels first: the records' announcement makes the edge's snapshots read both
        await client.mset({f"cat:stk:SKU-S-{p}": "1:5:0" for p in product_ids})
        await store.put_items([Item(int(p), 5, "active", [f"SKU-S-{p}"], False)
                               for p in product_ids])  # fmt: skip
        ranker = m.ranker_bytes(model.ranker)
        v1 = reg.save(arrays, ranker, {"metrics": model.metrics, "n": 1})
        v2 = reg.save(arrays, ranker, {"metrics": model.metrics, "n": 2})
        return [v1, v2]

    loop.run(_no_experiment(client))  # no experiment of another test splits these shoppers
    versions = loop.run(setup())
    try:
        yield versions
    finally:
        if before:
            loop.run(reg.promote(before))
        loop.run(_no_experiment(client))
        loop.run(client.aclose())


def _token(settings: config.Settings, user: int, roles: tuple[str, ...] = ()) -> str:
    return auth.issue(settings.auth.jwt_secret, user, roles=roles or ("customer",))


def test_routes_answer_from_the_promoted_model_explain_and_roll_back(
    edge: EdgeServer, settings: config.Settings, registry_versions: list[str]
) -> None:
    v1, v2 = registry_versions
    admin = {"authorization": f"Bearer {_token(settings, 1, ('admin',))}"}
    shopper = {"authorization": f"Bearer {_token(settings, 7)}"}  # SYNTHETIC shopper 7
    with httpx.Client(base_url=edge.url, timeout=10) as c:
        assert (
            c.post(
                "/admin/recommendations/models/promote", headers=admin, json={"version": v1}
            ).json()["active"]
            == v1
        )
        assert (
            c.post(
                "/admin/recommendations/models/promote", headers=admin, json={"version": v2}
            ).status_code
            == 200
        )

        def answer(version: str, query: str = "") -> dict[str, object]:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # each worker notices the pointer on its own
                r = c.get(f"/recommendations/me?k=5{query}", headers=shopper)
                assert r.status_code == 200, r.text
                body: dict[str, object] = r.json()
                if body["model_version"] == version:
                    return body
                time.sleep(0.2)
            raise AssertionError(f"{version} not served")

        body = answer(v2, "&explain=1")
        items = body["items"]
        assert isinstance(items, list)
        assert 0 < len(items) <= 5
        assert all(it["reason"] for it in items)
        assert all(it["contributions"] and len(it["contributions"]) <= 3 for it in items)
        names = {ct["feature"] for it in items for ct in it["contributions"]}
        assert names <= set(rules.FEATURE_NAMES)
        back = c.post("/admin/recommendations/models/rollback", headers=admin).json()
        assert back == {"active": v1, "previous": v2}
        answer(v1, "&context=home")
        listed = c.get("/admin/recommendations/models", headers=admin).json()
        assert listed["active"] == v1
        assert {v1, v2} <= {x["version"] for x in listed["models"]}
        assert c.get("/products/1/similar?k=3").status_code == 200


def test_bad_input_is_a_clear_4xx(edge: EdgeServer, settings: config.Settings) -> None:
    shopper = {"authorization": f"Bearer {_token(settings, 7)}"}
    admin = {"authorization": f"Bearer {_token(settings, 1, ('admin',))}"}
    with httpx.Client(base_url=edge.url, timeout=10) as c:
        assert c.get("/recommendations/me").status_code == 401
        for q in ("k=0", "k=51", "context=shop", "context=product:x", "explain=2"):
            r = c.get(f"/recommendations/me?{q}", headers=shopper)
            assert r.status_code == 400, q
            assert r.headers["content-type"].startswith("application/problem+json")
        assert c.get("/products/x/similar").status_code == 404
        r = c.post("/admin/recommendations/models/promote", headers=admin,
                   json={"version": "20990101T000000Z-deadbeef"})  # fmt: skip
        assert r.status_code == 404
        nope = {"version": "nope"}
        r = c.post("/admin/recommendations/models/promote", headers=admin, json=nope)
        assert r.status_code == 422


def test_an_experiment_splits_shoppers_logs_exposures_and_reports_per_arm(
    edge: EdgeServer, settings: config.Settings, registry_versions: list[str]
) -> None:
    v1, _ = registry_versions
    admin = {"authorization": f"Bearer {_token(settings, 1, ('admin',))}"}
    key = f"exp-{secrets.token_hex(4)}"
    arms = [
        {"name": "model", "weight": 5000, "model_version": v1},
        {"name": "popular", "weight": 5000, "blend": "popular"},
    ]
    with httpx.Client(base_url=edge.url, timeout=10) as c:
        bad = c.post("/admin/recommendations/experiments", headers=admin,
                     json={"key": key, "arms": [{**arms[0], "weight": 10}, arms[1]]})  # fmt: skip
        assert bad.status_code == 422
        r = c.post("/admin/recommendations/experiments", headers=admin,
                   json={"key": key, "arms": arms, "window_s": 3600})  # fmt: skip
        assert r.status_code == 200, r.text
        time.sleep(2.5)  # every worker reads the experiment with the model pointer
        shoppers = range(1, 61)
        for u in shoppers:
            head = {"authorization": f"Bearer {_token(settings, u)}"}
            assert c.get("/recommendations/me?k=5", headers=head).status_code == 200
        deadline = time.monotonic() + 30
        while True:  # exposures are logged off the answer's path
            res = c.get("/admin/recommendations/experiments/results", headers=admin).json()
            if sum(a["users"] for a in res["arms"]) == len(shoppers) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    by_arm = {a["name"]: a for a in res["arms"]}
    expected = {"model": 0, "popular": 0}
    for u in shoppers:
        expected[arms[rules.assign(key, u, [5000, 5000])]["name"]] += 1  # type: ignore[index]
    assert {n: a["users"] for n, a in by_arm.items()} == expected
    assert all(a["impressions"] > 0 for a in by_arm.values() if a["users"])
    assert res["key"] == key
    assert 0.0 <= res["srm_p"] <= 1.0


def test_cart_context_is_seeded_by_the_carts_products_and_never_recommends_them(
    edge: EdgeServer, settings: config.Settings, loop: asyncio.Runner
) -> None:
    loop.run(catalog_gen.load(settings.postgres.dsn, settings.redis.url, 10))  # categories
    made = [make_product(edge, [price]) for price in (5_000, 700, 900, 300)]
    (a, [sku_a], _), (b, [sku_b], _), (c, _, _), (d, _, _) = made
    _, tok = token("customer")
    for pid, sku in ((a, sku_a), (b, sku_b)):
        r = httpx.post(f"{edge.url}/cart/items", headers=h(tok),
                       json={"product_id": pid, "sku": sku, "quantity": 1})  # fmt: skip
        assert r.status_code == 200, r.text

    async def signals() -> None:
        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            # what the recommendation consumer keeps from catalog.v1 and the orders
            await RecsStore(client).put_items([
                Item(p, 5, "active", skus, False) for p, skus, _ in made
            ])  # fmt: skip
            await client.zadd(f"recs:cobuy:{a}", {str(b): 2.0, str(c): 1.0})
            await client.zadd(f"recs:covis:{b}", {str(a): 2.0, str(d): 1.0})
        finally:
            await client.aclose()

    loop.run(signals())
    deadline = time.monotonic() + 30
    while True:  # each worker's availability snapshot takes in the new products on its own
        r = httpx.get(f"{edge.url}/recommendations/me?k=10&context=cart",
                      headers={"authorization": f"Bearer {tok}"})  # fmt: skip
        assert r.status_code == 200, r.text
        reasons = {it["product_id"]: it["reason"] for it in r.json()["items"]}
        if {c, d} <= set(reasons) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert reasons[c] == "bought together with items in your cart", reasons
    assert reasons[d] == "viewed together with items in your cart", reasons
    assert a not in reasons, reasons  # already in the cart
    assert b not in reasons, reasons
    assert r.json()["context"] == "cart"
