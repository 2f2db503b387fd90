"""Inventory follows everyday reservations (services/inventory) on the real Redis: a payment
confirms once (a derived StockSold id), a failed payment releases, the sweeper releases only
reservations past their expiry, and a refunded order's units come back once."""

from __future__ import annotations

import datetime as dt
import uuid

import redis.asyncio as aioredis

from nexuscart import config, events
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.adapters.reservations import Line, Placed, ReservationStore
from services.inventory.holds import expire_reservations
from services.inventory.payments import PaymentConfirmer
from tests.envelopes import envelope

QTY = 3


async def _reserve(rs: ReservationStore, sku: str, user_id: int, ttl_ms: int) -> int:
    placed = await rs.checkout(
        user_id=user_id, idem=uuid.uuid4().hex, fingerprint="f",
        lines=[Line(sku, 1, QTY, 100, 1, 10)], currency="usd", subtotal_minor=300,
        discount_minor=0, total_minor=300, promo_code=None, ttl_ms=ttl_ms,
        event_id=str(uuid.uuid4()), occurred_at=dt.datetime.now(dt.UTC).isoformat(),
    )  # fmt: skip
    assert isinstance(placed, Placed), placed
    return placed.order_id


async def test_payments_confirm_or_release_everyday_reservations_once_and_refunds_restore(
    redis_client: aioredis.Redis,
) -> None:
    rs = ReservationStore(redis_client)
    confirmer = PaymentConfirmer(FlashSaleStore(redis_client), rs)
    sku = f"SKU-INV-{uuid.uuid4().hex[:8]}"
    paid = await _reserve(rs, sku, 501, 600_000)
    failed = await _reserve(rs, sku, 502, 600_000)
    ok = envelope(events.PaymentSucceeded(paid, None, 501, 300, f"pay_{paid}"), key=501)
    ko = envelope(events.PaymentFailed(failed, None, 502, f"pay_{failed}", "failed"), key=502)
    await confirmer.handle([ok, ko])
    await confirmer.handle([ok, ko])  # redelivered: nothing more
    level = (await rs.levels([sku]))[sku]
    assert (level.available, level.reserved, level.sold) == (10 - QTY, 0, QTY)
    assert confirmer.late_payments == 0
    # a payment for a released reservation is late (the payments service refunds it)
    late = envelope(events.PaymentSucceeded(failed, None, 502, 300, f"pay_{failed}"), key=502)
    await confirmer.handle([late])
    assert confirmer.late_payments == 1
    # the paid order cancelled before shipment: its units are back, once
    refunded = envelope(
        events.OrderStatusChanged(paid, None, 501, "PAID", "REFUNDED", "buyer", 501, "c"), key=501
    )
    await confirmer.handle([refunded])
    await confirmer.handle([refunded])
    level = (await rs.levels([sku]))[sku]
    assert (level.available, level.reserved, level.sold) == (10, 0, 0)


async def test_the_sweeper_releases_only_reservations_past_their_expiry(
    redis_client: aioredis.Redis,
) -> None:
    rs = ReservationStore(redis_client)
    sku = f"SKU-EXP-{uuid.uuid4().hex[:8]}"
    soon = await _reserve(rs, sku, 601, 1)
    later = await _reserve(rs, sku, 602, 600_000)
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000) + 1_000
    assert await expire_reservations(rs, now_ms) >= QTY  # other tests' may be due too
    assert await expire_reservations(rs, now_ms) == 0  # once
    level = (await rs.levels([sku]))[sku]
    assert (level.reserved, level.available) == (QTY, 10 - QTY)
    assert await rs.confirm(soon, 601, str(uuid.uuid4()), "2026-01-01T00:00:00+00:00") == -1
    assert await rs.confirm(later, 602, str(uuid.uuid4()), "2026-01-01T00:00:00+00:00") == QTY


async def test_one_batch_on_the_pipe_confirms_every_order_each_in_its_events_order(
    redis_client: aioredis.Redis, settings: config.Settings
) -> None:
    """The service's wiring: the orders of a batch run concurrently on one pipe; an order
    paid then refunded in the same batch ends restored, the others sold, a late one counted."""
    pipe = RedisPipe(settings.redis.url)
    rs = ReservationStore(redis_client, pipe=pipe)
    confirmer = PaymentConfirmer(FlashSaleStore(redis_client, pipe), rs)
    sku = f"SKU-BATCH-{uuid.uuid4().hex[:8]}"
    try:
        paid = [await _reserve(rs, sku, 700 + i, 600_000) for i in range(2)]
        gone = await _reserve(rs, sku, 799, 1)
        assert await rs.release(gone, 799, "expired", str(uuid.uuid4()), "t", False) == QTY
        batch = [
            envelope(events.PaymentSucceeded(o, None, 700 + i, 300, f"pay_{o}"), key=700 + i)
            for i, o in enumerate(paid)
        ]
        batch.append(
            envelope(
                events.OrderStatusChanged(
                    paid[0], None, 700, "PAID", "REFUNDED", "buyer", 700, "c"
                ),
                key=700,
            )
        )
        batch.append(envelope(events.PaymentSucceeded(gone, None, 799, 300, "pay_g"), key=799))
        await confirmer.handle(batch)
    finally:
        pipe.close()
    level = (await rs.levels([sku]))[sku]
    assert (level.available, level.reserved, level.sold) == (10 - QTY, 0, QTY)
    assert confirmer.late_payments == 1
