"""Inventory's payments consumer: a succeeded payment confirms its hold (held -> sold); a
failed one releases it (reason ``payment_failed``: the units go back on sale).

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
from nexuscart.events import Envelope, PaymentFailed, PaymentSucceeded

log = logging.getLogger("nexuscart.inventory")


def stock_sold_id(payment: Envelope) -> uuid.UUID:
    """The StockSold event id for a payment: derived, so a redelivery reuses it."""
    return uuid.uuid5(payment.id, "StockSold")


def stock_released_id(payment: Envelope) -> uuid.UUID:
    """The StockReleased event id for a failed payment: derived, like stock_sold_id."""
    return uuid.uuid5(payment.id, "StockReleased")


class PaymentConfirmer:
    def __init__(self, store: FlashSaleStore):
        self.store = store
        # payments whose hold had already ended (expired or cancelled): the payments service
        # refunds them; counted and logged here so nothing is lost silently
        self.late_payments = 0

    async def handle(self, batch: Sequence[Envelope]) -> None:
        for env in batch:
            data = env.data
            if isinstance(data, PaymentFailed):
                if data.sale_id is None:
                    continue  # an everyday order's payment: no hold
                f = data
                # idempotent: a hold already gone (sold, expired, released) releases nothing
                await self.store.release(
                    data.sale_id,
                    f.order_id,
                    "payment_failed",
                    str(stock_released_id(env)),
                    env.occurred_at.isoformat(),
                    only_if_due=False,
                )
                continue
            if not isinstance(data, PaymentSucceeded) or data.sale_id is None:
                continue  # not ours (other payment events; an everyday order's payment)
            d = data
            n = await self.store.confirm(
                data.sale_id, d.order_id, str(stock_sold_id(env)), env.occurred_at.isoformat()
            )
            if n < 0:
                self.late_payments += 1
                log.warning(
                    "payment %s for order %s (sale %s, user %s) arrived after its hold ended:"
                    " to refund; late_payments_total=%d",
                    d.payment_id, d.order_id, d.sale_id, d.user_id, self.late_payments,
                )  # fmt: skip
