"""The flash-sale Lua scripts against a real Redis: atomicity, idempotency, conservation."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import cast

import msgspec
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from nexuscart import config, events
from nexuscart.adapters.flash_sales import FlashSaleStore, PurchaseReply, StockConflict
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.domain.flash_sale import Outcome, Sale

_next_sale = iter(range(900_000, 1_000_000))


def new_sale(
    units: int = 10,
    limit: int = 2,
    ttl_s: int = 600,
    starts_in_ms: int = -1000,
    ends_in_ms: int = 3_600_000,
) -> Sale:
    now = int(time.time() * 1000)
    return Sale(
        sale_id=next(_next_sale),
        sku="SKU-1",
        units=units,
        price_cents=1999,
        currency="usd",
        per_user_limit=limit,
        starts_at_ms=now + starts_in_ms,
        ends_at_ms=now + ends_in_ms,
        hold_ttl_s=ttl_s,
    )


async def outbox(store: FlashSaleStore, sale: Sale) -> list[dict[bytes, bytes]]:
    """The fields of every entry in the sale's outbox stream, oldest first."""
    entries = await store.client.xrange(store.keys(sale.sale_id).outbox)
    return [cast(dict[bytes, bytes], fields) for _, fields in entries or []]


async def buy(
    store: FlashSaleStore, sale: Sale, user: int, qty: int = 1, key: str | None = None
) -> PurchaseReply:
    return await store.purchase(
        sale.sale_id,
        user,
        qty,
        key or uuid.uuid4().hex,
        str(uuid.uuid4()),
        "2026-11-23T00:00:00+00:00",
    )


async def test_purchase_holds_units_and_appends_a_decodable_stock_reserved_event(
    store: FlashSaleStore,
) -> None:
    sale = new_sale(units=5)
    await store.upsert(sale)
    code, order_id, expires, left = await buy(store, sale, user=42, qty=2)
    assert (code, left) == (Outcome.OK, 3)
    assert order_id >> 32 == sale.sale_id
    raw = await outbox(store, sale)
    assert len(raw) == 1
    fields = raw[0]
    assert fields[b"k"] == b"42"
    env = events.decode(fields[b"e"])
    assert env.type == "StockReserved"
    assert env.data == events.StockReserved(
        order_id=order_id,
        sale_id=sale.sale_id,
        user_id=42,
        sku="SKU-1",
        quantity=2,
        unit_price_cents=1999,
        currency="usd",
        expires_at_ms=expires,
    )
    assert await store.stock(sale.sale_id) == (3, 2, 0)


async def test_same_idempotency_key_replays_the_same_hold_and_changes_nothing(
    store: FlashSaleStore,
) -> None:
    sale = new_sale(units=5)
    await store.upsert(sale)
    first = await buy(store, sale, user=7, key="k-1")
    again = await buy(store, sale, user=7, key="k-1")
    assert again[0] == Outcome.REPLAY
    assert again[1:3] == first[1:3]
    assert await store.stock(sale.sale_id) == (4, 1, 0)
    assert (await buy(store, sale, user=7, qty=2, key="k-1"))[0] == Outcome.KEY_REUSED


async def test_per_user_limit_sale_window_and_unknown_sale_are_refused(
    store: FlashSaleStore,
) -> None:
    sale = new_sale(units=10, limit=2)
    await store.upsert(sale)
    assert (await buy(store, sale, user=1, qty=2))[0] == Outcome.OK
    assert (await buy(store, sale, user=1, qty=1))[0] == Outcome.LIMIT_REACHED
    assert (await buy(store, sale, user=2, qty=3))[0] == Outcome.LIMIT_REACHED
    later = new_sale(starts_in_ms=60_000)
    await store.upsert(later)
    assert (await buy(store, later, user=1))[0] == Outcome.NOT_STARTED
    over = new_sale(starts_in_ms=-60_000, ends_in_ms=-1)
    await store.upsert(over)
    assert (await buy(store, over, user=1))[0] == Outcome.ENDED
    assert (await buy(store, new_sale(), user=1))[0] == Outcome.NOT_FOUND
    assert await store.stock(sale.sale_id) == (8, 2, 0)


async def test_release_and_confirm_are_idempotent_and_exclusive(store: FlashSaleStore) -> None:
    sale = new_sale(units=3, limit=3)
    await store.upsert(sale)
    _, a, _, _ = await buy(store, sale, user=5)
    _, b, _, _ = await buy(store, sale, user=6)
    iso = "2026-11-23T00:00:00+00:00"
    assert await store.confirm(sale.sale_id, a, str(uuid.uuid4()), iso) == 1
    assert await store.confirm(sale.sale_id, a, str(uuid.uuid4()), iso) == 1  # replay
    assert (
        await store.release(sale.sale_id, a, "cancelled", str(uuid.uuid4()), iso, only_if_due=False)
        == 0
    )  # sold units are not released
    assert (
        await store.release(sale.sale_id, b, "cancelled", str(uuid.uuid4()), iso, only_if_due=False)
        == 1
    )
    assert (
        await store.release(sale.sale_id, b, "cancelled", str(uuid.uuid4()), iso, only_if_due=False)
        == 0
    )
    assert await store.confirm(sale.sale_id, b, str(uuid.uuid4()), iso) == -1
    assert await store.stock(sale.sale_id) == (2, 0, 1)
    kinds = [events.decode(f[b"e"]).type for f in await outbox(store, sale)]
    assert kinds == ["StockReserved", "StockReserved", "StockSold", "StockReleased"]


async def test_units_cannot_drop_below_held_plus_sold(store: FlashSaleStore) -> None:
    sale = new_sale(units=4, limit=4)
    await store.upsert(sale)
    await buy(store, sale, user=1, qty=3)
    with pytest.raises(StockConflict):
        await store.upsert(msgspec.structs.replace(sale, units=2))
    assert await store.upsert(msgspec.structs.replace(sale, units=10)) == (10, 7, 3, 0)


async def test_concurrent_buyers_never_oversell(store: FlashSaleStore) -> None:
    sale = new_sale(units=100, limit=1)
    await store.upsert(sale)
    results = await asyncio.gather(*(buy(store, sale, user=u) for u in range(1000)))
    codes = [r[0] for r in results]
    assert codes.count(Outcome.OK) == 100
    assert codes.count(Outcome.SOLD_OUT) == 900
    assert len({r[1] for r in results if r[0] == Outcome.OK}) == 100
    assert await store.stock(sale.sale_id) == (0, 100, 0)
    assert store.batcher is not None
    assert store.batcher.round_trips < 1000  # coalesced into pipelines


ops = st.lists(
    st.tuples(
        st.sampled_from(["buy", "release", "confirm", "restock"]),
        st.integers(0, 7),
        st.integers(1, 3),
    ),
    max_size=40,
)


@hsettings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops)
def test_stock_is_conserved_under_any_operation_sequence(
    settings: config.Settings, ops: list[tuple[str, int, int]]
) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(settings.redis.url)
        store = FlashSaleStore(client, RedisPipe(settings.redis.url))
        try:
            sale = new_sale(units=6, limit=3)
            await store.upsert(sale)
            units = sale.units
            orders: list[int] = []
            iso = "2026-11-23T00:00:00+00:00"
            for op, user, n in ops:
                if op == "buy":
                    res = await buy(store, sale, user=user, qty=n)
                    if res[0] == Outcome.OK:
                        orders.append(res[1])
                elif op == "release" and orders:
                    await store.release(
                        sale.sale_id,
                        orders[user % len(orders)],
                        "cancelled",
                        str(uuid.uuid4()),
                        iso,
                        only_if_due=False,
                    )
                elif op == "confirm" and orders:
                    await store.confirm(
                        sale.sale_id, orders[user % len(orders)], str(uuid.uuid4()), iso
                    )
                elif op == "restock":
                    units += n
                    await store.upsert(msgspec.structs.replace(sale, units=units))
                t = await store.totals(sale.sale_id)
                assert t["units"] == t["available"] + t["held"] + t["sold"] == units
                assert t["held"] == t["held_entries"]
                assert t["sold"] == t["sold_entries"]
                assert min(t["available"], t["held"], t["sold"]) >= 0
        finally:
            store.close()
            await client.aclose()

    asyncio.run(run())


purchases = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 3), st.integers(0, 3)),  # user, qty, key
    min_size=1,
    max_size=30,
)


def _sequential_model(
    batch: list[tuple[int, int, int]], units: int, limit: int
) -> list[tuple[int, int, int]]:
    """fs_purchase.lua's rules, one purchase at a time: (code, order sequence, units left)."""
    avail, seq = units, 0
    bought: dict[int, int] = {}
    answers: dict[tuple[int, int], tuple[int, int]] = {}  # (user, key) -> (qty, seq)
    out: list[tuple[int, int, int]] = []
    for user, qty, key in batch:
        prior = answers.get((user, key))
        if prior is not None:
            out.append(
                (Outcome.REPLAY, prior[1], -1) if prior[0] == qty else (Outcome.KEY_REUSED, 0, 0)
            )
        elif avail <= 0:
            out.append((Outcome.SOLD_OUT, 0, 0))
        elif avail < qty:
            out.append((Outcome.INSUFFICIENT, 0, avail))
        elif bought.get(user, 0) + qty > limit:
            out.append((Outcome.LIMIT_REACHED, 0, avail))
        else:
            seq += 1
            avail -= qty
            bought[user] = bought.get(user, 0) + qty
            answers[(user, key)] = (qty, seq)
            out.append((Outcome.OK, seq, avail))
    return out


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=purchases, units=st.integers(0, 8))
def test_a_batch_in_one_script_call_decides_as_one_purchase_at_a_time(
    settings: config.Settings, batch: list[tuple[int, int, int]], units: int
) -> None:
    # Repeated users and reused keys inside one batch must see each other's effects:
    # replays, per-user limits and running out, exactly as in sequence.
    async def run() -> None:
        client = aioredis.Redis.from_url(settings.redis.url)
        store = FlashSaleStore(client, RedisPipe(settings.redis.url))
        try:
            answers = []
            for together in (True, False):
                sale = new_sale(units=units, limit=3)
                await store.upsert(sale)
                calls = [buy(store, sale, user=u, qty=q, key=f"k{k}") for u, q, k in batch]
                if together:
                    assert store.batcher is not None
                    before = store.batcher.round_trips
                    got = await asyncio.gather(*calls)
                    assert store.batcher.round_trips == before + 1
                else:
                    got = [await c for c in calls]
                t = await store.totals(sale.sale_id)
                assert t["units"] == t["available"] + t["held"] == units
                assert t["held"] == t["held_entries"]
                outbox = await client.xlen(store.keys(sale.sale_id).outbox)
                assert outbox == sum(1 for r in got if r[0] == Outcome.OK)
                # order ids differ by sale; compare their sequence numbers and drop expiry
                answers.append([(r[0], r[1] & 0xFFFFFFFF, r[3]) for r in got])
            assert answers[0] == answers[1] == _sequential_model(batch, units, limit=3)
        finally:
            store.close()
            await client.aclose()

    asyncio.run(run())


async def test_confirm_after_the_hold_expired_answers_gone_even_before_the_expirer_ran(
    store: FlashSaleStore,
) -> None:
    sale = new_sale(units=2, limit=2)
    await store.upsert(sale)
    reply = await buy(store, sale, user=31)
    k = store.keys(sale.sale_id)
    # the hold's expiry is in the past, and no expirer has released it yet
    past = int(time.time() * 1000) - 1000
    await store.client.zadd(k.expiry, {str(reply.order_id): past})
    iso = "2026-11-23T00:00:00+00:00"
    assert await store.confirm(sale.sale_id, reply.order_id, str(uuid.uuid4()), iso) == -1
    assert await store.stock(sale.sale_id) == (1, 1, 0)  # nothing sold
    kinds = [events.decode(f[b"e"]).type for f in await outbox(store, sale)]
    assert kinds == ["StockReserved"]
    # the expirer still releases it, once
    assert (
        await store.release(
            sale.sale_id, reply.order_id, "expired", str(uuid.uuid4()), iso, only_if_due=True
        )
        == 1
    )
    assert await store.stock(sale.sale_id) == (2, 0, 0)
