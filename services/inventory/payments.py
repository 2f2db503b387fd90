"""Inventory's payments consumer: a succeeded payment confirms its hold (held -> sold).

The confirm script runs in Redis atomically and is idempotent per order (a sold order answers
its quantity again and writes no second event); the StockSold event it writes gets an id
derived from the payment event's id, so a redelivered payment that raced a crash still
produces the same StockSold id, and the orders inbox drops the repeat.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.events import Envelope, PaymentSucceeded

log = logging.getLogger("nexuscart.inventory")


def stock_sold_id(payment: Envelope) -> uuid.UUID:
    """The StockSold event id for a payment: derived, so a redelivery reuses it."""
    return uuid.uuid5(payment.id, "StockSold")


class PaymentConfirmer:
    def __init__(self, store: FlashSaleStore):
        self.store = store
        # payments whose hold had already ended (expired or cancelled): the payments service
        # refunds them; counted and logged here so nothing is lost silently
        self.late_payments = 0

    async def handle(self, batch: Sequence[Envelope]) -> None:
        for env in batch:
            if not isinstance(env.data, PaymentSucceeded):
                continue  # not ours (the topic may carry other payment events)
            d = env.data
            n = await self.store.confirm(
                d.sale_id, d.order_id, str(stock_sold_id(env)), env.occurred_at.isoformat()
            )
            if n < 0:
                self.late_payments += 1
                log.warning(
                    "payment %s for order %s (sale %s, user %s) arrived after its hold ended:"
                    " to refund; late_payments_total=%d",
                    d.payment_id, d.order_id, d.sale_id, d.user_id, self.late_payments,
                )  # fmt: skip
