"""Inventory follows the payment (services/inventory/payments.py) on the real Redis: a failed
payment releases the order's hold once (reason payment_failed, a StockReleased id derived
from the payment event), and the order then ends CANCELLED; an everyday order's payment
events (no sale) go to its reservation and leave flash-sale holds alone (the everyday side:
tests/test_inventory_reservations.py)."""

from __future__ import annotations

import msgspec

from nexuscart import events
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.domain import orders
from nexuscart.domain.flash_sale import Outcome
from services.inventory.payments import PaymentConfirmer, stock_released_id
from tests.envelopes import envelope
from tests.test_flash_sale_store import buy, new_sale, outbox


async def test_a_failed_payment_releases_its_hold_once(store: FlashSaleStore) -> None:
    sale = new_sale(units=3, limit=1)
    await store.upsert(sale)
    code, order_id, _, _ = await buy(store, sale, user=41)
    assert code == Outcome.OK
    failed = envelope(
        events.PaymentFailed(order_id, sale.sale_id, 41, f"pay_{order_id}", "failed"), key=41
    )
    confirmer = PaymentConfirmer(store)
    await confirmer.handle([failed])
    await confirmer.handle([failed])  # redelivered
    assert await store.stock(sale.sale_id) == (3, 0, 0)
    released = []
    for fields in await outbox(store, sale):
        for value in fields.values():
            try:
                env = events.decode(value)
            except msgspec.DecodeError:
                continue
            if isinstance(env.data, events.StockReleased):
                released.append(env)
    assert [
        (e.id, e.data.reason) for e in released if isinstance(e.data, events.StockReleased)
    ] == [(stock_released_id(failed), "payment_failed")]
    assert orders.target_status(released[0]) == orders.CANCELLED


async def test_payment_events_of_everyday_orders_leave_flash_holds_alone(
    store: FlashSaleStore,
) -> None:
    sale = new_sale(units=2, limit=1)
    await store.upsert(sale)
    code, order_id, _, _ = await buy(store, sale, user=42)
    assert code == Outcome.OK
    confirmer = PaymentConfirmer(store)
    await confirmer.handle(
        [
            envelope(events.PaymentFailed(order_id, None, 42, "pay_x", "failed"), key=42),
            envelope(events.PaymentSucceeded(order_id, None, 42, 100, "pay_x"), key=42),
        ]
    )
    assert await store.stock(sale.sale_id) == (1, 1, 0)  # the hold is untouched
