"""The order state machine, pure.

PENDING_PAYMENT -> PAID -> CONFIRMED, or PENDING_PAYMENT/PAID -> EXPIRED | CANCELLED.
Events of one order arrive in order (one Kafka partition per user), but may be redelivered
or arrive in one batch; a status only ever moves forward in rank, so applying the
highest-ranked event of a batch equals applying them one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from nexuscart.events import Envelope, PaymentSucceeded, StockReleased, StockSold

PENDING_PAYMENT: Final = "PENDING_PAYMENT"
PAID: Final = "PAID"
CONFIRMED: Final = "CONFIRMED"
EXPIRED: Final = "EXPIRED"
CANCELLED: Final = "CANCELLED"

RANK: Final[dict[str, int]] = {PENDING_PAYMENT: 0, PAID: 1, CONFIRMED: 2, EXPIRED: 2, CANCELLED: 2}


def target_status(env: Envelope) -> str | None:
    """The status an event moves its order to (None: the event creates it or is not ours)."""
    data = env.data
    if isinstance(data, PaymentSucceeded):
        return PAID
    if isinstance(data, StockSold):
        return CONFIRMED
    if isinstance(data, StockReleased):
        # a hold released because its payment failed is a cancelled order, not an expired one
        return CANCELLED if data.reason in ("cancelled", "payment_failed") else EXPIRED
    return None


def collapse(events: Iterable[Envelope]) -> dict[tuple[int, int], str]:
    """Final status per (user_id, order_id) of a batch: the highest-ranked target wins."""
    out: dict[tuple[int, int], str] = {}
    for env in events:
        status = target_status(env)
        if status is None:
            continue
        key = (env.data.user_id, env.data.order_id)
        prev = out.get(key)
        if prev is None or RANK[status] > RANK[prev]:
            out[key] = status
    return out
