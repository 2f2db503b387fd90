"""Inventory's payments consumer: a succeeded payment confirms its hold or everyday
reservation (held -> sold); a failed one releases it (reason ``payment_failed``: the units go
back on sale). It also follows orders.v1 for one event: a paid everyday order cancelled
before shipment (OrderStatusChanged to REFUNDED) has its sold units put back on sale
(``ReservationStore.restore_sold``, which also gives the promotion use back).

The confirm script runs in Redis atomically and is idempotent per order (a sold order answers
its quantity again and writes no second event); the StockSold event it writes gets an id
derived from the payment event's id, so a redelivered payment that raced a crash still
produces the same StockSold id, and the orders inbox drops the repeat.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.reservations import ReservationStore
from nexuscart.domain import orders
from nexuscart.events import Envelope, OrderStatusChanged, PaymentFailed, PaymentSucceeded

log = logging.getLogger("nexuscart.inventory")
# what this consumer acts on (other payment events are not its own)
_OURS = (OrderStatusChanged, PaymentFailed, PaymentSucceeded)


def stock_sold_id(payment: Envelope) -> uuid.UUID:
    """The StockSold event id for a payment: derived, so a redelivery reuses it."""
    return uuid.uuid5(payment.id, "StockSold")


def stock_released_id(payment: Envelope) -> uuid.UUID:
    """The StockReleased event id for a failed payment: derived, like stock_sold_id."""
    return uuid.uuid5(payment.id, "StockReleased")


class PaymentConfirmer:
    def __init__(self, store: FlashSaleStore, reservations: ReservationStore | None = None):
        self.store = store
        self.reservations = reservations or ReservationStore(store.client)
        # payments whose hold had already ended (expired or cancelled): the payments service
        # refunds them; counted and logged here so nothing is lost silently
        self.late_payments = 0

    async def handle(self, batch: Sequence[Envelope]) -> None:
        """Each order's events in their order, the orders concurrently: on the service's
        pipe (bootstrap) the calls of every order in one loop tick go to Redis in one write,
        instead of a round trip per event. Every order finishes before the first error is
        raised (each call is idempotent, so a retried batch repeats nothing)."""
        by_order: dict[int, list[Envelope]] = {}
        for env in batch:
            if isinstance(env.data, _OURS):
                by_order.setdefault(env.data.order_id, []).append(env)
        late: list[PaymentSucceeded] = []
        done = await asyncio.gather(
            *(self._order(evs, late) for evs in by_order.values()), return_exceptions=True
        )
        if late:
            self.late_payments += len(late)
            d = late[0]
            log.warning(
                "%d payment(s) arrived after their hold ended, to refund (first: payment %s,"
                " order %s, sale %s, user %s); late_payments_total=%d",
                len(late), d.payment_id, d.order_id, d.sale_id, d.user_id, self.late_payments,
            )  # fmt: skip
        for r in done:
            if isinstance(r, BaseException):
                raise r

    async def _order(self, evs: list[Envelope], late: list[PaymentSucceeded]) -> None:
        for env in evs:
            data = env.data
            iso = env.occurred_at.isoformat()
            if isinstance(data, OrderStatusChanged):
                if data.sale_id is None and data.to_status == orders.REFUNDED:
                    # idempotent: a repeat answers the same units and writes nothing
                    await self.reservations.restore_sold(
                        data.order_id, data.user_id, str(stock_released_id(env)), iso
                    )
            elif isinstance(data, PaymentFailed):
                # idempotent: a hold already gone (sold, expired, released) releases nothing
                if data.sale_id is None:
                    await self.reservations.release(
                        data.order_id, data.user_id, "payment_failed",
                        str(stock_released_id(env)), iso, only_if_due=False,
                    )  # fmt: skip
                else:
                    await self.store.release(
                        data.sale_id, data.order_id, "payment_failed",
                        str(stock_released_id(env)), iso, only_if_due=False,
                    )  # fmt: skip
            elif isinstance(data, PaymentSucceeded):
                d = data
                if d.sale_id is None:
                    n = await self.reservations.confirm(
                        d.order_id, d.user_id, str(stock_sold_id(env)), iso
                    )
                else:
                    n = await self.store.confirm(
                        d.sale_id, d.order_id, str(stock_sold_id(env)), iso
                    )
                if n < 0:
                    late.append(d)
