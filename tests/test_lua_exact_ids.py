"""Ids, prices and order ids travel exactly through the Lua scripts into the outbox events,
across the whole range the token verifier accepts (user ids 1 to 10^18 - 1), and a sale keeps
selling past 2^24 purchase ids (real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from nexuscart import _core, auth, config, events
from nexuscart.adapters.flash_sales import FlashSaleStore, OutboxEntry
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.domain.flash_sale import MAX_SALE_ID, Outcome, Sale
from tests.test_flash_sale_store import buy, new_sale

ISO = "2026-11-23T00:00:00+00:00"
MAX_USER_ID = 10**18 - 1  # the token verifier accepts 1 to 18 ASCII digits other than zero
SEQ_SPAN = 1 << 32  # order ids are sale_id << 32 | seq (fs_purchase.lua)
LUA = Path(__file__).resolve().parent.parent / "py" / "nexuscart" / "adapters" / "lua"


async def outbox_entries(store: FlashSaleStore, sale: Sale) -> list[OutboxEntry]:
    raw: Any = await store.client.xrange(store.keys(sale.sale_id).outbox)
    stream = store.keys(sale.sale_id).outbox
    return [OutboxEntry(stream, i, f[b"k"], f[b"e"]) for i, f in raw]


def test_the_verifier_bound_is_the_one_the_scripts_are_tested_at() -> None:
    verifier = _core.TokenVerifier("s" * 32, "nexuscart")
    assert verifier.user_id(f"Bearer {auth.issue('s' * 32, MAX_USER_ID)}") == MAX_USER_ID
    with pytest.raises(_core.AuthError):
        verifier.user_id(f"Bearer {auth.issue('s' * 32, MAX_USER_ID + 1)}")


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    user_id=st.integers(1, MAX_USER_ID),
    price=st.integers(0, 10**12),
    then=st.sampled_from(["confirm", "cancel", "expire"]),
)
@example(user_id=1, price=0, then="confirm")
@example(user_id=MAX_USER_ID, price=10**12, then="confirm")
@example(user_id=MAX_USER_ID, price=10**12 - 1, then="cancel")
@example(user_id=123_456_789_012_345_678, price=999_999_999_999, then="expire")
@example(user_id=2**53 + 1, price=1, then="confirm")
def test_every_event_carries_user_ids_prices_and_order_ids_exactly(
    settings: config.Settings, user_id: int, price: int, then: str
) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(settings.redis.url)
        store = FlashSaleStore(client, RedisPipe(settings.redis.url))
        try:
            sale = msgspec.structs.replace(new_sale(units=3, limit=3), price_cents=price)
            await store.upsert(sale)
            reply = await buy(store, sale, user=user_id, qty=2)
            assert reply.code == Outcome.OK
            ids = [str(uuid.uuid4()), str(uuid.uuid4())]
            if then == "confirm":
                assert await store.confirm(sale.sale_id, reply.order_id, ids[1], ISO) == 2
            else:
                reason = "cancelled" if then == "cancel" else "expired"
                n = await store.release(
                    sale.sale_id, reply.order_id, reason, ids[1], ISO, only_if_due=False
                )
                assert n == 2
            assert await store.buyers(sale.sale_id) == ({user_id} if then == "confirm" else set())
            entries = await outbox_entries(store, sale)
            assert [e.key for e in entries] == [str(user_id).encode()] * 2
            envs = [events.decode(e.value or b"") for e in entries]
            assert all(env.key == str(user_id) for env in envs)
            assert envs[0].data == events.StockReserved(
                order_id=reply.order_id,
                sale_id=sale.sale_id,
                user_id=user_id,
                sku=sale.sku,
                quantity=2,
                unit_price_cents=price,
                currency="usd",
                expires_at_ms=reply.expires_at_ms,
            )
            if then == "confirm":
                assert envs[1].data == events.StockSold(
                    order_id=reply.order_id, sale_id=sale.sale_id, user_id=user_id, quantity=2
                )
            else:
                assert envs[1].data == events.StockReleased(
                    order_id=reply.order_id,
                    sale_id=sale.sale_id,
                    user_id=user_id,
                    quantity=2,
                    reason="cancelled" if then == "cancel" else "expired",
                )
            assert [str(env.id) for env in envs][1] == ids[1]
        finally:
            store.close()
            await client.aclose()

    asyncio.run(run())


async def test_a_replayed_purchase_of_a_large_user_answers_the_same_exact_order(
    store: FlashSaleStore,
) -> None:
    sale = new_sale(units=3, limit=3)
    await store.upsert(sale)
    first = await buy(store, sale, user=MAX_USER_ID, key="same")
    again = await buy(store, sale, user=MAX_USER_ID, key="same")
    assert again.code == Outcome.REPLAY
    assert (again.order_id, again.expires_at_ms) == (first.order_id, first.expires_at_ms)


async def _at_seq(store: FlashSaleStore, sale: Sale, seq: int) -> None:
    await store.upsert(sale)
    await store.client.hset(store.keys(sale.sale_id).stock, "seq", seq)


async def test_a_sale_keeps_selling_past_2_pow_24_purchase_ids(store: FlashSaleStore) -> None:
    sale = new_sale(units=5, limit=5)
    await _at_seq(store, sale, 2**24 - 2)
    got = [await buy(store, sale, user=9) for _ in range(3)]
    assert [r.code for r in got] == [Outcome.OK] * 3
    assert [r.order_id for r in got] == [
        sale.sale_id * SEQ_SPAN + s for s in (2**24 - 1, 2**24, 2**24 + 1)
    ]
    envs = [events.decode(e.value or b"") for e in await outbox_entries(store, sale)]
    assert [env.data.order_id for env in envs] == [r.order_id for r in got]


async def test_the_last_purchase_id_of_the_highest_sale_id_is_exact_then_the_sale_refuses(
    store: FlashSaleStore,
) -> None:
    sale = msgspec.structs.replace(new_sale(units=5, limit=5), sale_id=MAX_SALE_ID)
    await store.client.delete(*store.keys(MAX_SALE_ID).base())
    await _at_seq(store, sale, SEQ_SPAN - 2)
    last = await buy(store, sale, user=MAX_USER_ID)
    assert last.code == Outcome.OK
    assert last.order_id == 2**52 - 1  # the largest order id there is, below 2^53
    env = events.decode((await outbox_entries(store, sale))[-1].value or b"")
    assert isinstance(env.data, events.StockReserved)
    assert (env.data.order_id, env.data.user_id) == (2**52 - 1, MAX_USER_ID)
    # no purchase id left: refused (as sold out) instead of reusing or overflowing one
    assert (await buy(store, sale, user=1)).code == Outcome.SOLD_OUT
    assert await store.stock(MAX_SALE_ID) == (4, 1, 0)


def test_every_event_is_built_and_appended_by_the_shared_helpers() -> None:
    # lib.lua owns the envelope and the stream fields; no script builds its own
    for path in LUA.glob("*.lua"):
        if path.name == "lib.lua":
            continue
        text = path.read_text()
        assert "XADD" not in text, path.name
        assert "cjson" not in text, path.name
