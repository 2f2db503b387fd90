"""The orders projection converges whatever the order of arrival (issue 8, "from reading"):
a release or sale applied before its reservation (the relay re-sending a claimed entry late)
must not leave a PENDING order with no hold. Hypothesis drives the arrival orders, batchings
and redeliveries, for flash-sale holds (StockReserved) and everyday orders (OrderPlaced);
every example is written by the real projector into the real PostgreSQL, and the status,
details, items, timeline and promotion usage are those of the events applied once in order."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexuscart import config, events
from nexuscart.domain import orders as order_rules
from services.orders.projector import OrdersProjector
from tests.conftest import Projection
from tests.envelopes import envelope, placed_order

SALE_ID = 900_002
ENDINGS = ["pending", "paid", "sold", "expired", "cancelled", "paid_then_expired"]
# a fresh range per run: a database kept between runs (a Citus cluster) holds earlier rows
_ids = itertools.count(1 + uuid.uuid4().int % (1 << 22))


def lifecycle(
    user_id: int, order_id: int, ending: str, everyday: bool = False
) -> list[events.Envelope]:
    """One order's events in the order they happen: reserve, maybe pay, maybe end."""
    sale_id = None if everyday else SALE_ID
    placed: events.Event
    if everyday:
        placed = placed_order(user_id, order_id)
    else:
        placed = events.StockReserved(
            order_id=order_id,
            sale_id=SALE_ID,
            user_id=user_id,
            sku="SKU-CONV",
            quantity=2,
            unit_price_cents=750,
            currency="eur",
            expires_at_ms=1_900_000_000_123,
        )
    out = [envelope(placed, key=user_id)]
    paid = events.PaymentSucceeded(
        order_id=order_id, sale_id=sale_id, user_id=user_id, amount_cents=1500, payment_id="p"
    )
    sold = events.StockSold(order_id=order_id, sale_id=sale_id, user_id=user_id, quantity=2)

    def released(reason: str) -> events.StockReleased:
        return events.StockReleased(
            order_id=order_id, sale_id=sale_id, user_id=user_id, quantity=2, reason=reason
        )

    tails: dict[str, list[events.Event]] = {
        "pending": [],
        "paid": [paid],
        "sold": [paid, sold],
        "expired": [released("expired")],
        "cancelled": [released("cancelled")],
        "paid_then_expired": [paid, released("expired")],
    }
    return out + [envelope(d, key=user_id) for d in tails[ending]]


async def _row(pool: Any, user_id: int, order_id: int) -> tuple[Any, ...] | None:
    r = await pool.fetchrow(
        "SELECT o.status, o.sale_id, o.total_cents, o.currency, o.expires_at,"
        " (SELECT count(*) FROM order_items i WHERE i.user_id = o.user_id"
        "  AND i.order_id = o.order_id) AS items"
        " FROM orders o WHERE o.user_id = $1 AND o.order_id = $2",
        user_id,
        order_id,
    )
    return None if r is None else tuple(r)


async def _timeline(pool: Any, user_id: int, order_id: int) -> set[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT event_id, to_status, reason FROM order_events WHERE user_id = $1 AND order_id = $2",
        user_id,
        order_id,
    )
    return {tuple(r) for r in rows}


async def _usage(pool: Any, user_id: int, order_id: int) -> str | None:
    state: str | None = await pool.fetchval(
        "SELECT state FROM promotion_usages WHERE user_id = $1 AND order_id = $2",
        user_id,
        order_id,
    )
    return state


def in_order_result(in_order: list[events.Envelope]) -> tuple[str, set[tuple[Any, ...]]]:
    """The status and timeline rows of the events applied once, in order."""
    state, rows = order_rules.PENDING_PAYMENT, {(in_order[0].id, "PENDING_PAYMENT", "placed")}
    for e in in_order[1:]:
        act = order_rules.system_action(e)
        if act is not None:
            state, steps = order_rules.fold(state, [act])
            rows |= {(e.id, b, why) for _, b, why in steps}
    return state, rows


@settings(
    max_examples=60,  # each one writes to the real PostgreSQL
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ending=st.sampled_from(ENDINGS), everyday=st.booleans(), data=st.data())
def test_any_arrival_order_converges_to_the_in_order_result(
    projection: Projection, ending: str, everyday: bool, data: st.DataObject
) -> None:
    n = next(_ids)
    user_id, order_id = 8_000_000 + n, (SALE_ID << 24) | n
    in_order = lifecycle(user_id, order_id, ending, everyday)
    # the relay may deliver any event again, and late: a permutation with repeats
    repeats = data.draw(st.lists(st.sampled_from(in_order), max_size=3))
    arrivals = data.draw(st.permutations(in_order + repeats))
    cut_at = st.integers(1, max(1, len(arrivals) - 1))
    cuts = sorted(data.draw(st.sets(cut_at, max_size=3))) if len(arrivals) > 1 else []
    batches = [arrivals[a:b] for a, b in itertools.pairwise([0, *cuts, len(arrivals)])]
    for batch in batches:
        projection.runner.run(projection.projector.handle(batch))
    run, pool = projection.runner.run, projection.pool
    got = run(_row(pool, user_id, order_id))
    expected_status, expected_timeline = in_order_result(in_order)
    assert got == (
        expected_status,
        None if everyday else SALE_ID,
        1500,
        "eur",
        dt.datetime.fromtimestamp(1_900_000_000.123, dt.UTC),
        2 if everyday else 1,
    )
    assert run(_timeline(pool, user_id, order_id)) == expected_timeline
    if everyday:
        ended = expected_status in ("EXPIRED", "CANCELLED")
        assert run(_usage(pool, user_id, order_id)) == ("returned" if ended else "used")


async def test_a_release_before_its_reservation_leaves_no_pending_order(
    settings: config.Settings, migrated: None
) -> None:
    """The case from reading, spelled out: released first (the order is unknown), then the
    reservation arrives in a later batch."""
    pool = await asyncpg.create_pool(settings.postgres.dsn, min_size=1, max_size=4)
    try:
        projector = OrdersProjector(pool)
        n = next(_ids)
        user_id, order_id = 8_500_000 + n, (SALE_ID << 24) | n
        reserve, release = lifecycle(user_id, order_id, "expired")
        await projector.handle([release])
        assert (await _row(pool, user_id, order_id) or ())[0] == "EXPIRED"
        await projector.handle([reserve])
        row = await _row(pool, user_id, order_id)
        assert row is not None
        assert (row[0], row[2], row[5]) == ("EXPIRED", 1500, 1)
    finally:
        await pool.close()
