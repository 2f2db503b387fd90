"""Checkouts racing through the use-case layer (the edge's own composition, real Redis and
PostgreSQL, asyncio concurrency, no HTTP): 1,000 buyers for 100 units of one SKU inside
3-line carts (all or nothing, no oversell, every refusal names its short lines); a code
limited to N uses used exactly N times under 20 x N parallel checkouts; one Idempotency-Key
replayed during and after a checkout yields one order; refusals change nothing."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from devtools import catalog_gen
from edge.deps import Deps, build
from nexuscart import config, events
from nexuscart.adapters.reservations import OUTBOX
from nexuscart.app.cart import AddItem, Owner
from nexuscart.app.catalog import Caller, ProductCreate, StockAdjustment, VariantCreate
from nexuscart.app.checkout import CheckoutRequest, StockShort
from nexuscart.app.errors import Refused
from nexuscart.app.promotions import PromotionCreate

_users = itertools.count(70_000_000)
FAR: int = 2**50


@pytest.fixture(scope="module")
async def deps(settings: config.Settings, migrated: None) -> AsyncIterator[Deps]:
    await catalog_gen.load(settings.postgres.dsn, settings.redis.url, 5)
    # a thousand tasks queue for the pools: wait for a connection as long as they need
    edge = msgspec.structs.replace(settings.edge, dependency_timeout_s=30.0)
    d = build(msgspec.structs.replace(settings, edge=edge))
    yield d
    # no relay runs here: leave no backlog for the relay tests of this session
    await d.redis.delete(OUTBOX)
    await d.close()


def leaf() -> int:
    cats = catalog_gen.categories()
    parents = {c.parent_id for c in cats}
    return next(c.category_id for c in cats if c.category_id not in parents)


async def product(deps: Deps, stocks: list[int], price: int = 1_000) -> tuple[int, list[str]]:
    seller = Caller(next(_users), False)
    skus = [f"R-{uuid.uuid4().hex[:10]}" for _ in stocks]
    body = ProductCreate(
        category_id=leaf(),
        title="Race item",
        status="active",
        variants=[
            VariantCreate(sku=s, price_minor=price, currency="EUR", attributes={"i": str(i)})
            for i, s in enumerate(skus)
        ],
    )
    view, _, _ = await deps.catalog.create(seller, body, uuid.uuid4().hex)
    for s, n in zip(skus, stocks, strict=True):
        await deps.catalog.adjust_stock(
            seller, view.product_id, s, uuid.uuid4().hex, StockAdjustment(n, "restock")
        )
    return view.product_id, skus


async def fill(deps: Deps, user: int, pid: int, lines: list[tuple[str, int]]) -> None:
    """As POST /cart/items does it, at the catalog's price (1,000 EUR cents)."""
    for sku, q in lines:
        await deps.carts.store.add(Owner(user_id=user).key(), sku, pid, q, 1_000, "EUR")


async def fill_all(deps: Deps, users: list[int], pid: int, lines: list[tuple[str, int]]) -> None:
    gate = asyncio.Semaphore(32)  # setup, not the race: bounded

    async def one(u: int) -> None:
        async with gate:
            await fill(deps, u, pid, lines)

    await asyncio.gather(*(one(u) for u in users))


async def levels(deps: Deps, skus: list[str]) -> dict[str, Any]:
    return await deps.checkout.reservations.levels(skus)


async def test_1000_buyers_race_for_100_units_in_3_line_carts(deps: Deps) -> None:
    pid, (hot, a, b) = await product(deps, [100, 5_000, 5_000])
    buyers = [next(_users) for _ in range(1_000)]
    await fill_all(deps, buyers, pid, [(hot, 1), (a, 2), (b, 3)])

    async def buy(user: int) -> Any:
        try:
            return await deps.checkout.checkout(user, uuid.uuid4().hex, CheckoutRequest())
        except StockShort as short:
            return short

    results = await asyncio.gather(*(buy(u) for u in buyers))
    placed = [r for r in results if not isinstance(r, StockShort)]
    short = [r for r in results if isinstance(r, StockShort)]
    assert len(placed) == 100
    assert len(short) == 900
    assert all(s.lines == [(hot, 0)] for s in short)  # names the short line, only it
    lv = await levels(deps, [hot, a, b])
    assert (lv[hot].reserved, lv[hot].available) == (100, 0)
    assert (lv[a].reserved, lv[b].reserved) == (200, 300)  # all or nothing: no partial
    for sku in (hot, a, b):
        assert lv[sku].on_hand == lv[sku].available + lv[sku].reserved + lv[sku].sold
    # the buyers' carts are emptied by the checkout; the refused keep theirs
    carts = await asyncio.gather(*(deps.carts.store.get(Owner(user_id=u).key()) for u in buyers))
    assert sum(not c.lines for c in carts) == 100


async def test_a_code_limited_to_n_uses_is_used_exactly_n_times(deps: Deps) -> None:
    n = 5
    pid, (sku,) = await product(deps, [10_000])
    code = f"RACE{uuid.uuid4().hex[:8].upper()}"
    await deps.promotions.create(
        1,
        PromotionCreate(
            code=code, kind="percent", value=10, starts_at_ms=0, ends_at_ms=FAR, usage_limit=n
        ),
        uuid.uuid4().hex,
    )
    buyers = [next(_users) for _ in range(20 * n)]
    await fill_all(deps, buyers, pid, [(sku, 1)])

    async def buy(user: int) -> Any:
        try:
            return await deps.checkout.checkout(
                user, uuid.uuid4().hex, CheckoutRequest(promo_code=code.lower())
            )
        except Refused as r:
            return r

    results = await asyncio.gather(*(buy(u) for u in buyers))
    ok = [r[0] for r in results if not isinstance(r, Refused)]
    assert len(ok) == n
    assert all(r.discount_minor == 100 and r.total_minor == 900 for r in ok)
    assert {r.slug for r in results if isinstance(r, Refused)} == {"promo-used-up"}
    page = await deps.promotions.list(code[:-1], 1)
    assert (page.items[0].code, page.items[0].uses) == (code, n)
    assert (await levels(deps, [sku]))[sku].reserved == n  # refused ones reserved nothing


async def test_one_key_replayed_during_and_after_a_checkout_yields_one_order(
    deps: Deps,
) -> None:
    pid, (sku,) = await product(deps, [50])
    user, key = next(_users), uuid.uuid4().hex
    await fill(deps, user, pid, [(sku, 2)])
    during = await asyncio.gather(
        *(deps.checkout.checkout(user, key, CheckoutRequest()) for _ in range(20))
    )
    after = await deps.checkout.checkout(user, key, CheckoutRequest())
    orders = {a.order_id for a, _ in [*during, after]}
    assert len(orders) == 1
    assert sum(not replayed for _, replayed in during) == 1
    assert after[1] is True
    assert msgspec.structs.asdict(after[0]) == msgspec.structs.asdict(during[0][0])
    assert (await levels(deps, [sku]))[sku].reserved == 2
    with pytest.raises(Refused) as other:
        await deps.checkout.checkout(user, key, CheckoutRequest(expected_total_minor=1))
    assert (other.value.status, other.value.slug) == (422, "idempotency-key-reused")
    placed = [
        e.data
        for e in await _outbox(deps)
        if isinstance(e.data, events.OrderPlaced) and e.data.order_id in orders
    ]
    assert len(placed) == 1
    assert placed[0].lines == (events.OrderLine(sku, pid, 2, 1_000),)
    assert (placed[0].subtotal_minor, placed[0].total_minor) == (2_000, 2_000)


async def _outbox(deps: Deps) -> list[events.Envelope]:
    raw: Any = await deps.redis.xrange(OUTBOX)
    return [events.decode(f[b"e"]) for _, f in raw]


async def test_refused_checkouts_change_nothing(deps: Deps) -> None:
    pid, (sku, other) = await product(deps, [3, 3])
    user = next(_users)
    key = uuid.uuid4().hex
    with pytest.raises(Refused) as empty:
        await deps.checkout.checkout(user, key, CheckoutRequest())
    assert empty.value.slug == "cart-empty"
    await fill(deps, user, pid, [(sku, 2), (other, 3)])
    await deps.carts.set_quantity(Owner(user_id=user), other, 3)
    for body, slug in [
        (CheckoutRequest(promo_code="NOSUCHCODE"), "promo-unavailable"),
        (CheckoutRequest(expected_total_minor=1), "price-changed"),
    ]:
        with pytest.raises(Refused) as refused:
            await deps.checkout.checkout(user, uuid.uuid4().hex, body)
        assert refused.value.slug == slug
    # a line the stock cannot cover: 409 naming it; nothing reserved, the cart kept
    await deps.carts.add(Owner(user_id=user), AddItem(pid, sku, 2))  # 4 > 3
    with pytest.raises(StockShort) as short:
        await deps.checkout.checkout(user, uuid.uuid4().hex, CheckoutRequest())
    assert short.value.lines == [(sku, 3)]
    lv = await levels(deps, [sku, other])
    assert (lv[sku].reserved, lv[other].reserved) == (0, 0)
    assert len((await deps.carts.view(Owner(user_id=user))).lines) == 2
