"""Inventory confirms paid holds (services/inventory/payments.py) on the real Redis: once per
order, with a StockSold id derived from the payment, and a payment for a hold that already
ended is recorded for a refund instead of failing the consumer."""

from __future__ import annotations

import uuid

import msgspec

from nexuscart import events
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.domain.flash_sale import Outcome, Sale
from services.inventory.payments import PaymentConfirmer, stock_sold_id
from tests.envelopes import envelope
from tests.test_flash_sale_store import buy, new_sale, outbox


def payment(sale: Sale, order_id: int, user_id: int) -> events.Envelope:
    return envelope(
        events.PaymentSucceeded(
            order_id=order_id,
            sale_id=sale.sale_id,
            user_id=user_id,
            amount_cents=sale.price_cents,
            payment_id=f"pi_{uuid.uuid4().hex}",
        ),
        key=user_id,
    )


async def _events(store: FlashSaleStore, sale: Sale) -> list[events.Envelope]:
    out = []
    for fields in await outbox(store, sale):
        for value in fields.values():
            try:
                out.append(events.decode(value))
            except msgspec.DecodeError:
                continue  # the entry's other fields (its key)
    return out


async def test_a_payment_confirms_its_hold_once_with_a_derived_stock_sold_id(
    store: FlashSaleStore,
) -> None:
    sale = new_sale(units=3, limit=1)
    await store.upsert(sale)
    code, order_id, _, _ = await buy(store, sale, user=31)
    assert code == Outcome.OK
    paid = payment(sale, order_id, 31)
    confirmer = PaymentConfirmer(store)
    await confirmer.handle([paid])
    await confirmer.handle([paid])  # redelivered
    assert await store.stock(sale.sale_id) == (2, 0, 1)
    sold = [e for e in await _events(store, sale) if isinstance(e.data, events.StockSold)]
    assert [e.id for e in sold] == [stock_sold_id(paid)]
    assert confirmer.late_payments == 0


async def test_a_payment_after_its_hold_ended_is_recorded_for_refund(
    store: FlashSaleStore,
) -> None:
    sale = new_sale(units=3, limit=1)
    await store.upsert(sale)
    code, order_id, _, _ = await buy(store, sale, user=32)
    assert code == Outcome.OK
    released = await store.release(
        sale.sale_id, order_id, "cancelled", str(uuid.uuid4()), "2026-11-23T00:00:00+00:00", False
    )
    assert released == 1
    confirmer = PaymentConfirmer(store)
    await confirmer.handle([payment(sale, order_id, 32)])
    assert confirmer.late_payments == 1
    assert await store.stock(sale.sale_id) == (3, 0, 0)  # nothing sold
    assert not [e for e in await _events(store, sale) if isinstance(e.data, events.StockSold)]


async def test_events_other_than_payments_are_ignored(store: FlashSaleStore) -> None:
    sale = new_sale(units=3, limit=1)
    await store.upsert(sale)
    code, order_id, _, _ = await buy(store, sale, user=33)
    assert code == Outcome.OK
    other = envelope(
        events.StockSold(order_id=order_id, sale_id=sale.sale_id, user_id=33, quantity=1), key=33
    )
    await PaymentConfirmer(store).handle([other])
    assert await store.stock(sale.sale_id) == (2, 1, 0)
