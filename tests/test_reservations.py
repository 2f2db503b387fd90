"""The everyday reservation store on real Redis: checkout all or nothing, the end of a
reservation (confirm, release, restore) atomic with its event, ids exact, promotion uses
counted and given back, and conservation on_hand = available + reserved + sold after any
interleaving (hypothesis, stateful)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from nexuscart import config, events
from nexuscart.adapters.catalog_store import CatalogStore, StockLevel
from nexuscart.adapters.flash_sales import STREAMS_INDEX
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.adapters.reservations import (
    OUTBOX,
    PROMO,
    PUSED,
    PUSER,
    Line,
    Placed,
    Rejected,
    ReservationStore,
    Short,
)

ISO = "2026-11-27T00:00:00+00:00"
MAX_USER_ID = 10**18 - 1


def sku_of(tag: str, i: int) -> str:
    return f"T{tag}-{i}"


async def checkout(
    store: ReservationStore,
    user: int,
    lines: list[tuple[str, int]],
    *,
    on_hand: dict[str, tuple[int, int]] | None = None,
    promo: str | None = None,
    idem: str | None = None,
    fingerprint: str = "fp",
    ttl_ms: int = 60_000,
) -> Any:
    on_hand = on_hand or {}
    ls = [Line(sku, 7, q, 250, *(on_hand.get(sku) or (None, None))) for sku, q in lines]
    total = sum(q * 250 for _, q in lines)
    return await store.checkout(
        user_id=user,
        idem=idem or uuid.uuid4().hex,
        fingerprint=fingerprint,
        lines=ls,
        currency="EUR",
        subtotal_minor=total,
        discount_minor=0,
        total_minor=total,
        promo_code=promo,
        ttl_ms=ttl_ms,
        event_id=str(uuid.uuid4()),
        occurred_at=ISO,
    )


async def outbox(client: aioredis.Redis) -> list[events.Envelope]:
    raw: Any = await client.xrange(OUTBOX)
    return [events.decode(f[b"e"]) for _, f in raw]


@pytest.fixture
async def rs(redis_client: aioredis.Redis) -> AsyncIterator[ReservationStore]:
    await redis_client.delete(OUTBOX)
    yield ReservationStore(redis_client)
    await redis_client.delete(OUTBOX)  # no relay runs here: no backlog for the relay tests


async def test_checkout_reserves_every_line_or_none_and_names_the_short_ones(
    rs: ReservationStore,
) -> None:
    t = uuid.uuid4().hex[:8]
    a, b, c = sku_of(t, 1), sku_of(t, 2), sku_of(t, 3)
    levels = {a: (1, 5), b: (1, 1), c: (1, 0)}
    r = await checkout(rs, 1, [(a, 2), (b, 2), (c, 1)], on_hand=levels)
    assert isinstance(r, Short)
    assert sorted(r.lines) == [(b, 1), (c, 0)]
    lv = await rs.levels([a, b, c])
    assert [lv[s].reserved for s in (a, b, c)] == [0, 0, 0]
    ok = await checkout(rs, 1, [(a, 2), (b, 1)], on_hand=levels)
    assert isinstance(ok, Placed)
    assert ok.order_id > 1 << 52
    assert OUTBOX in await rs.client.smembers(STREAMS_INDEX)  # the relay reads it
    lv = await rs.levels([a, b])
    assert lv[a] == (5, 3, 2, 0)
    assert lv[b] == (1, 0, 1, 0)


async def test_reservation_ends_once_with_its_event_and_ids_exact(
    rs: ReservationStore, redis_client: aioredis.Redis
) -> None:
    t = uuid.uuid4().hex[:8]
    a, b = sku_of(t, 1), sku_of(t, 2)
    levels = {a: (1, 10), b: (1, 10)}
    one = await checkout(rs, MAX_USER_ID, [(a, 2), (b, 3)], on_hand=levels)
    two = await checkout(rs, MAX_USER_ID, [(a, 1)], on_hand=levels)
    assert isinstance(one, Placed)
    assert isinstance(two, Placed)
    assert await rs.confirm(one.order_id, MAX_USER_ID, str(uuid.uuid4()), ISO) == 5
    assert await rs.confirm(one.order_id, MAX_USER_ID, str(uuid.uuid4()), ISO) == 5  # repeat
    assert (
        await rs.release(one.order_id, MAX_USER_ID, "cancelled", str(uuid.uuid4()), ISO, False) == 0
    )
    n = await rs.release(two.order_id, MAX_USER_ID, "payment_failed", str(uuid.uuid4()), ISO, False)
    assert n == 1
    assert await rs.confirm(two.order_id, MAX_USER_ID, str(uuid.uuid4()), ISO) == -1  # late
    assert await rs.restore_sold(one.order_id, MAX_USER_ID, str(uuid.uuid4()), ISO) == 5
    assert await rs.restore_sold(one.order_id, MAX_USER_ID, str(uuid.uuid4()), ISO) == 5
    assert await rs.restore_sold(two.order_id, MAX_USER_ID, str(uuid.uuid4()), ISO) == 0
    lv = await rs.levels([a, b])
    assert lv[a] == (10, 10, 0, 0)
    assert lv[b] == (10, 10, 0, 0)
    envs = await outbox(redis_client)
    assert [e.type for e in envs] == [
        "OrderPlaced",
        "OrderPlaced",
        "StockSold",
        "StockReleased",
        "StockReleased",
    ]
    assert {e.key for e in envs} == {str(MAX_USER_ID)}
    placed = envs[0].data
    assert isinstance(placed, events.OrderPlaced)
    assert placed.order_id == one.order_id
    assert placed.user_id == MAX_USER_ID
    assert [(ln.sku, ln.quantity, ln.unit_price_minor) for ln in placed.lines] == [
        (a, 2, 250),
        (b, 3, 250),
    ]
    assert placed.promo_code is None
    sold = envs[2].data
    assert isinstance(sold, events.StockSold)
    assert (sold.order_id, sold.sale_id, sold.quantity) == (one.order_id, None, 5)
    rel = envs[3].data
    assert isinstance(rel, events.StockReleased)
    assert (rel.order_id, rel.reason, rel.quantity) == (two.order_id, "payment_failed", 1)


async def test_expired_reservations_are_due_and_release_only_when_due(
    rs: ReservationStore,
) -> None:
    t = uuid.uuid4().hex[:8]
    a = sku_of(t, 1)
    r = await checkout(rs, 42, [(a, 1)], on_hand={a: (1, 3)}, ttl_ms=1)
    later = await checkout(rs, 42, [(a, 1)], on_hand={a: (1, 3)}, ttl_ms=600_000)
    assert isinstance(r, Placed)
    assert isinstance(later, Placed)
    await asyncio.sleep(0.01)
    due = await rs.due(r.expires_at_ms + 1, 10_000)
    assert (42, r.order_id) in due
    assert (42, later.order_id) not in due
    assert await rs.confirm(r.order_id, 42, str(uuid.uuid4()), ISO) == -1  # past its expiry
    assert await rs.release(later.order_id, 42, "expired", str(uuid.uuid4()), ISO, True) == 0
    assert await rs.release(r.order_id, 42, "expired", str(uuid.uuid4()), ISO, True) == 1
    assert (await rs.levels([a]))[a] == (3, 2, 1, 0)


async def test_same_key_same_request_answers_the_same_order_other_request_refused(
    rs: ReservationStore,
) -> None:
    t = uuid.uuid4().hex[:8]
    a = sku_of(t, 1)
    key = uuid.uuid4().hex
    results = await asyncio.gather(
        *(checkout(rs, 5, [(a, 1)], on_hand={a: (1, 50)}, idem=key) for _ in range(10))
    )
    assert all(isinstance(r, Placed) for r in results)
    assert len({r.order_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert (await rs.levels([a]))[a].reserved == 1
    other = await checkout(rs, 5, [(a, 2)], on_hand={a: (1, 50)}, idem=key, fingerprint="x")
    assert other == Rejected("idempotency-key-reused")


async def test_promotion_uses_are_counted_and_given_back(
    rs: ReservationStore, redis_client: aioredis.Redis
) -> None:
    t = uuid.uuid4().hex[:8]
    a, code = sku_of(t, 1), f"P{t}".upper()
    await redis_client.hset(PROMO, code, f"1|0|{2**50}|2|1")
    lv = {a: (1, 100)}
    first = await checkout(rs, 1, [(a, 1)], on_hand=lv, promo=code)
    assert isinstance(first, Placed)
    assert await checkout(rs, 1, [(a, 1)], on_hand=lv, promo=code) == Rejected("promo-user-limit")
    second = await checkout(rs, 2, [(a, 1)], on_hand=lv, promo=code)
    assert isinstance(second, Placed)
    assert await checkout(rs, 3, [(a, 1)], on_hand=lv, promo=code) == Rejected("promo-used-up")
    assert await rs.release(first.order_id, 1, "cancelled", str(uuid.uuid4()), ISO, False) == 1
    assert int(await redis_client.hget(PUSED, code) or 0) == 1
    assert await redis_client.hget(PUSER, f"{code}|1") is None
    again = await checkout(rs, 1, [(a, 1)], on_hand=lv, promo=code)
    assert isinstance(again, Placed)
    await redis_client.hset(PROMO, code, f"0|0|{2**50}|2|1")
    assert await checkout(rs, 4, [(a, 1)], on_hand=lv, promo=code) == Rejected("promo-unavailable")


async def test_a_newer_catalog_level_wins_and_a_correction_below_held_leaves_zero(
    rs: ReservationStore,
) -> None:
    t = uuid.uuid4().hex[:8]
    a = sku_of(t, 1)
    assert isinstance(await checkout(rs, 1, [(a, 3)], on_hand={a: (2, 4)}), Placed)
    # an older version (a stale read) does not move on_hand back
    assert isinstance(await checkout(rs, 1, [(a, 1)], on_hand={a: (1, 100)}), Placed)
    assert await checkout(rs, 1, [(a, 1)], on_hand={a: (1, 100)}) == Short([(a, 0)])
    # a correction below reserved + sold: nothing available, never negative
    r = await checkout(rs, 1, [(a, 1)], on_hand={a: (3, 2)})
    assert r == Short([(a, 0)])
    assert (await rs.levels([a]))[a] == (2, 0, 4, 0)


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["checkout", "confirm", "release", "expire", "restore", "restock"]),
            st.integers(0, 1000),
            st.lists(st.integers(1, 4), min_size=1, max_size=3),
        ),
        max_size=40,
    )
)
def test_conservation_after_any_interleaving(settings: config.Settings, ops: list[Any]) -> None:
    """on_hand = available + reserved + sold after any sequence of checkouts, confirmations,
    releases (expiry, cancellation), restores and restocks (through the catalog's level, as
    the stock-adjustment API writes it); reserved and sold equal the open and sold orders."""

    async def run() -> None:
        client = aioredis.Redis.from_url(settings.redis.url)
        rs = ReservationStore(client)
        catalog = CatalogStore(client)
        t = uuid.uuid4().hex[:8]
        skus = [sku_of(t, i) for i in range(3)]
        version, on_hand = 1, dict.fromkeys(skus, 6)
        await catalog.set_levels((s, StockLevel(version, 6, 0)) for s in skus)
        placed: dict[int, tuple[int, list[tuple[str, int]]]] = {}
        sold: dict[int, tuple[int, list[tuple[str, int]]]] = {}
        try:
            for op, pick, qtys in ops:
                eid = str(uuid.uuid4())
                if op == "restock":
                    version += 1
                    sku = skus[pick % 3]
                    on_hand[sku] += qtys[0]
                    await catalog.set_levels([(sku, StockLevel(version, on_hand[sku], 0))])
                elif op == "checkout":
                    lines = list(zip(skus[pick % 3 :], qtys, strict=False))
                    user = 1 + pick % 5
                    lv = {s: (version, on_hand[s]) for s in skus}
                    r = await checkout(rs, user, lines, on_hand=lv)
                    if isinstance(r, Placed):
                        placed[r.order_id] = (user, lines)
                elif op == "restore" and sold:
                    oid = sorted(sold)[pick % len(sold)]
                    assert await rs.restore_sold(oid, sold[oid][0], eid, ISO) > 0
                    del sold[oid]
                elif op in ("confirm", "release", "expire") and placed:
                    oid = sorted(placed)[pick % len(placed)]
                    user = placed[oid][0]
                    if op == "confirm":
                        assert await rs.confirm(oid, user, eid, ISO) > 0
                        sold[oid] = placed[oid]
                    else:
                        reason = "expired" if op == "expire" else "cancelled"
                        assert await rs.release(oid, user, reason, eid, ISO, False) > 0
                    del placed[oid]
            after = await rs.levels(skus)
            for s in skus:
                level = after[s]
                assert level.on_hand == on_hand[s]
                assert level.on_hand == level.available + level.reserved + level.sold
                assert level.reserved == sum(
                    q for _, ls in placed.values() for k, q in ls if k == s
                )
                assert level.sold == sum(q for _, ls in sold.values() for k, q in ls if k == s)
        finally:
            await client.delete(OUTBOX)
            await client.aclose()

    asyncio.run(run())


async def test_checkouts_on_the_pipe_survive_a_lost_script_cache(
    settings: config.Settings, redis_client: aioredis.Redis
) -> None:
    """Redis restarted (its script cache empty): the callers of one tick load the script
    once and each runs again; every checkout lands once."""
    pipe = RedisPipe(settings.redis.url)
    rs = ReservationStore(redis_client, pipe=pipe)
    try:
        t = uuid.uuid4().hex[:8]
        a = sku_of(t, 1)
        await redis_client.script_flush()
        done = await asyncio.gather(
            *(checkout(rs, 9, [(a, 1)], on_hand={a: (1, 100)}) for _ in range(50))
        )
        assert all(isinstance(r, Placed) for r in done)
        assert (await rs.levels([a]))[a].reserved == 50
    finally:
        pipe.close()
        await redis_client.delete(OUTBOX)


async def test_every_catalog_level_written_reaches_the_checkouts_copy(
    redis_client: aioredis.Redis,
) -> None:
    """The catalog's writer tells the counters: a checkout that brings no level sees a
    restock and a correction (none is left for a later checkout to bring)."""
    rs = ReservationStore(redis_client)
    catalog = CatalogStore(redis_client, mirror=rs.mirror_levels)
    t = uuid.uuid4().hex[:8]
    a = sku_of(t, 1)
    assert await checkout(rs, 1, [(a, 1)]) == Short([(a, 0)])  # never seen: no stock
    await catalog.set_levels([(a, StockLevel(1, 3, 0))])
    assert isinstance(await checkout(rs, 1, [(a, 2)]), Placed)
    await catalog.set_levels([(a, StockLevel(2, 2, 0))])  # a correction: 2 on hand
    assert await checkout(rs, 1, [(a, 1)]) == Short([(a, 0)])
    await catalog.set_levels([(a, StockLevel(1, 100, 0))])  # an older write: ignored
    assert (await rs.levels([a]))[a] == (2, 0, 2, 0)
    await redis_client.delete(OUTBOX)


async def test_concurrent_first_checkouts_register_the_outbox_with_one_command(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each first checkout used to send its own SADD, taking a pooled connection each: a
    # storm's first 256 checkouts grew the pool by as many new connections
    store = ReservationStore(redis_client)
    sent: list[tuple[Any, ...]] = []
    real = redis_client.sadd

    async def counted(*args: Any) -> Any:
        sent.append(args)
        await asyncio.sleep(0.01)  # the others arrive while it is in flight
        return await real(*args)

    monkeypatch.setattr(redis_client, "sadd", counted)
    await asyncio.gather(*(store.register_outbox() for _ in range(50)))
    assert sent == [(STREAMS_INDEX, OUTBOX)]
    assert OUTBOX in await redis_client.smembers(STREAMS_INDEX)
