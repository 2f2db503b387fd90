"""The payment of an order, pure: ids and keys derived from the order, and the state
machine that provider facts (webhooks, API answers) and order facts (the hold ended) fold
into.

The state is a join of monotone parts, so applying the same facts in any order, any number
of times, gives the same state (webhooks arrive twice, late and out of order):

* ``status`` only moves up in rank: pending < failed < canceled < succeeded. A success after
  a failure is real money (the buyer retried with another card) and wins; a failure after a
  success is stale and changes nothing.
* ``captured_cents`` and ``refunded_cents`` are the highest amounts any fact reported (the
  provider reports cumulative amounts, so a late fact with a lower figure is older).
* ``order_closed``: the order's hold ended without a sale (expired, cancelled); it never
  reopens. A succeeded payment of a closed order owes a refund of what is not refunded yet;
  a pending one's intent is cancelled at the provider (``cancel_due``).
* ``cancel_refused``: the provider refused to cancel the intent because it had moved on
  (succeeded, or processing); it is not asked again, the intent's own webhooks settle it.

A refund fact seen before the success implies the capture: the status becomes succeeded.
"""

from __future__ import annotations

import uuid
from typing import Final, Literal

import msgspec

PENDING: Final = "pending"
FAILED: Final = "failed"
CANCELED: Final = "canceled"
SUCCEEDED: Final = "succeeded"
RANK: Final[dict[str, int]] = {PENDING: 0, FAILED: 1, CANCELED: 2, SUCCEEDED: 3}

PROVIDER_STRIPE: Final = "stripe"

# the namespace of ids derived from an order (payment ids, event ids, idempotency keys)
_NS: Final = uuid.UUID("5b0c1f0e-4d1e-4a51-9a57-9a1f2c6e8d01")

# Stripe's limit on a PaymentIntent amount (8 digits of the smallest unit)
MAX_AMOUNT_CENTS: Final = 99_999_999


def payment_id(order_id: int) -> str:
    """One payment per order: its id is the order's."""
    return f"pay_{order_id}"


def intent_key(order_id: int) -> str:
    """The provider idempotency key of the order's intent: a redelivered order event or a
    restart after a crash asks for the same intent, never a second one."""
    return f"nexuscart-intent-{order_id}"


def cancel_key(order_id: int) -> str:
    """The provider idempotency key of the cancellation of the order's intent: sweepers
    racing, or a retry after a crash, ask for the same cancellation."""
    return f"nexuscart-cancel-{order_id}"


def refund_key(order_id: int, kind: str, client_key: str = "") -> str:
    """The provider idempotency key (and our refund row's key) of a refund: ``late`` and
    ``cancel`` are once per order; ``admin`` once per admin Idempotency-Key."""
    return f"nexuscart-refund-{order_id}-{kind}" + (f"-{client_key}" if client_key else "")


def event_id(payment: str, what: str) -> uuid.UUID:
    """Event ids derived from the payment and what happened, so the same fact written twice
    (a retry, a redelivery, two webhooks) is one event downstream."""
    return uuid.uuid5(_NS, f"{payment}:{what}")


class Fact(msgspec.Struct, frozen=True):
    """One thing learnt about a payment. ``kind``: the provider said the intent ``failed``,
    was ``canceled`` (a webhook, or its answer to our cancel) or ``succeeded`` (with
    ``amount_cents`` captured), that ``refunded_cents`` in total went back, or refused to
    cancel the intent (``cancel_refused``); or the order ``closed`` (hold ended)."""

    kind: Literal["failed", "canceled", "succeeded", "refunded", "closed", "cancel_refused"]
    amount_cents: int = 0


class State(msgspec.Struct, frozen=True):
    status: str = PENDING
    captured_cents: int = 0
    refunded_cents: int = 0
    order_closed: bool = False
    cancel_refused: bool = False


def apply(state: State, fact: Fact) -> State:
    """The state after ``fact`` (commutative, idempotent: see the module docstring)."""
    status = state.status
    captured = state.captured_cents
    refunded = state.refunded_cents
    closed = state.order_closed
    cancel_refused = state.cancel_refused
    if fact.kind in (FAILED, CANCELED, SUCCEEDED):
        if RANK[fact.kind] > RANK[status]:
            status = fact.kind
        if fact.kind == SUCCEEDED:
            captured = max(captured, fact.amount_cents)
    elif fact.kind == "refunded":
        refunded = max(refunded, fact.amount_cents)
        status = SUCCEEDED  # only captured money is refunded
        captured = max(captured, refunded)
    elif fact.kind == "closed":
        closed = True
    elif fact.kind == "cancel_refused":
        cancel_refused = True
    return State(status, captured, refunded, closed, cancel_refused)


class Effects(msgspec.Struct, frozen=True):
    """What a state change announces (each at most once per payment, or per refunded total):
    the order is paid, its payment failed, money went back."""

    succeeded: bool = False
    failed: str | None = None  # the reason
    refunded_delta: int = 0


def effects(before: State, after: State) -> Effects:
    succeeded = after.status == SUCCEEDED and before.status != SUCCEEDED
    failed = None
    if after.status in (FAILED, CANCELED) and before.status == PENDING:
        failed = after.status
    return Effects(succeeded, failed, max(0, after.refunded_cents - before.refunded_cents))


def late_refund_owed(state: State) -> int:
    """What to give back because the order closed without a sale after (or while) the money
    was captured: everything not refunded yet."""
    if state.status == SUCCEEDED and state.order_closed:
        return max(0, state.captured_cents - state.refunded_cents)
    return 0


def cancel_due(state: State) -> bool:
    """Whether the payment's intent is to be cancelled at the provider: its order closed
    unpaid and the provider has not settled the intent (nor refused to cancel it), so the
    buyer could still pay for an order that is gone. (An intent must exist: the caller
    checks the payment has one.)"""
    return state.status == PENDING and state.order_closed and not state.cancel_refused


class RefundRefused(ValueError):
    """A refund the rules forbid (nothing captured, more than what is left)."""


def check_refund(state: State, amount_cents: int | None, pending_cents: int) -> int:
    """The amount of a new refund: ``amount_cents`` (None: everything left), never above
    what was captured minus what is refunded or being refunded (``pending_cents``)."""
    if state.status != SUCCEEDED or state.captured_cents <= 0:
        raise RefundRefused("the payment has captured nothing")
    left = state.captured_cents - max(state.refunded_cents, pending_cents)
    if left <= 0:
        raise RefundRefused("the payment is refunded in full")
    amount = left if amount_cents is None else amount_cents
    if amount <= 0:
        raise RefundRefused("a refund is at least 1 cent")
    if amount > left:
        raise RefundRefused(f"at most {left} cents are left to refund")
    return amount


# Stripe event types -> facts (docs/payments.md); other types are acknowledged and ignored.
STRIPE_TYPES: Final[dict[str, str]] = {
    "payment_intent.succeeded": SUCCEEDED,
    "payment_intent.payment_failed": FAILED,
    "payment_intent.canceled": CANCELED,
    "charge.refunded": "refunded",
}
