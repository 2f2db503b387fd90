"""The order state machine, pure: one machine for flash-sale and everyday orders.

::

    PENDING_PAYMENT --sold--> PAID --fulfil--> FULFILLING --ship--> SHIPPED --deliver--> DELIVERED
          |                     |                  |
          |                     +------cancel------+--> REFUNDED
          +--expired--> EXPIRED
          +--released | cancel--> CANCELLED

PAID means paid *and* the stock sold (the reservation or flash-sale hold confirmed, what the
flash flow called CONFIRMED); a payment alone moves nothing, since the hold may still expire
under it (the payment is then refunded as late). DELIVERED, CANCELLED, EXPIRED and REFUNDED
are terminal.

Who may do what (``ACTORS``): the system (events of Redis' scripts: sold, expired, released),
the buyer (cancel before shipment), the seller of the order's products and admins (fulfil,
ship, deliver; admins may also cancel). A system event that is not legal from the current
state is a repeat or was overtaken (a reservation ends once, in Redis), so it is dropped;
a person's illegal request is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from nexuscart.events import Envelope, StockReleased, StockSold

PENDING_PAYMENT: Final = "PENDING_PAYMENT"
PAID: Final = "PAID"
FULFILLING: Final = "FULFILLING"
SHIPPED: Final = "SHIPPED"
DELIVERED: Final = "DELIVERED"
CANCELLED: Final = "CANCELLED"
EXPIRED: Final = "EXPIRED"
REFUNDED: Final = "REFUNDED"

STATES: Final = (
    PENDING_PAYMENT,
    PAID,
    FULFILLING,
    SHIPPED,
    DELIVERED,
    CANCELLED,
    EXPIRED,
    REFUNDED,
)
TERMINAL: Final = frozenset({DELIVERED, CANCELLED, EXPIRED, REFUNDED})
# paid for and the stock sold (not refunded): what reconciliations count as sold
SOLD_STATES: Final = (PAID, FULFILLING, SHIPPED, DELIVERED)

Actor = Literal["system", "buyer", "seller", "admin"]
Action = Literal["sold", "expired", "released", "cancel", "fulfil", "ship", "deliver"]
SYSTEM: Final = "system"

# (state, action) -> next state; anything else is illegal
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (PENDING_PAYMENT, "sold"): PAID,
    (PENDING_PAYMENT, "expired"): EXPIRED,
    (PENDING_PAYMENT, "released"): CANCELLED,
    (PENDING_PAYMENT, "cancel"): CANCELLED,
    (PAID, "cancel"): REFUNDED,
    (FULFILLING, "cancel"): REFUNDED,
    (PAID, "fulfil"): FULFILLING,
    (PAID, "ship"): SHIPPED,
    (FULFILLING, "ship"): SHIPPED,
    (SHIPPED, "deliver"): DELIVERED,
}
ACTORS: Final[dict[str, frozenset[str]]] = {
    "sold": frozenset({"system"}),
    "expired": frozenset({"system"}),
    "released": frozenset({"system"}),
    "cancel": frozenset({"buyer", "admin"}),
    "fulfil": frozenset({"seller", "admin"}),
    "ship": frozenset({"seller", "admin"}),
    "deliver": frozenset({"seller", "admin"}),
}
# the action of a fulfilment request, by the status it asks for
FULFILMENT: Final[dict[str, Action]] = {FULFILLING: "fulfil", SHIPPED: "ship", DELIVERED: "deliver"}


class IllegalTransition(Exception):
    """``action`` by ``actor`` is not allowed from ``state``; nothing changes."""

    def __init__(self, state: str, action: str, actor: str):
        super().__init__(f"{actor} may not {action} an order in {state}")
        self.state = state
        self.action = action
        self.actor = actor


def step(state: str, action: str, actor: str) -> str:
    """The state after ``action`` by ``actor``, or IllegalTransition."""
    nxt = TRANSITIONS.get((state, action))
    if nxt is None or actor not in ACTORS.get(action, ()):
        raise IllegalTransition(state, action, actor)
    return nxt


def sources(action: str) -> tuple[str, ...]:
    """The states ``action`` is legal from (the edge's conditional update names them)."""
    return tuple(s for (s, a) in TRANSITIONS if a == action)


def system_action(env: Envelope) -> tuple[Action, str] | None:
    """(action, reason) of a system event for its order (None: moves no status)."""
    data = env.data
    if isinstance(data, StockSold):
        return "sold", "stock_sold"
    if isinstance(data, StockReleased):
        # a hold released because its payment failed or the buyer cancelled is a cancelled
        # order, not an expired one
        if data.reason in ("cancelled", "payment_failed"):
            return "released", data.reason
        return "expired", data.reason
    return None


def target_status(env: Envelope) -> str | None:
    """The status an event moves a pending order to (None: it moves none)."""
    act = system_action(env)
    return None if act is None else TRANSITIONS[(PENDING_PAYMENT, act[0])]


Transition = tuple[str, str, str]  # (from, to, reason)


def fold(state: str, actions: Iterable[tuple[str, str]]) -> tuple[str, list[Transition]]:
    """Apply system (action, reason) pairs in order from ``state``: the final state and the
    transitions that happened. Illegal ones (repeats, overtaken events) are dropped."""
    out: list[Transition] = []
    for action, reason in actions:
        nxt = TRANSITIONS.get((state, action))
        if nxt is None or SYSTEM not in ACTORS[action]:
            continue
        out.append((state, nxt, reason))
        state = nxt
    return state, out
