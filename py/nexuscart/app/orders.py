"""Order lifecycle use cases (docs/orders.md): the buyer's orders and timeline, the
seller/admin listing, fulfilment (fulfilling, shipped with a tracking reference, delivered)
and the buyer's cancellation. The rules are in domain/orders.py; the SQL in
adapters/orders_repo.py.

Where a person's transition is decided: in PostgreSQL, under the order's row lock, in one
transaction with its timeline row and an OrderStatusChanged event in orders_outbox (relayed
to orders.v1). The one exception is cancelling an unpaid everyday order: its reservation is
released in Redis first (the script decides between a payment's confirm and this release,
as it does for flash-sale holds), and only a release that happened is written as CANCELLED.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Final, Literal

import msgspec

from nexuscart.adapters.orders_repo import (
    NotFound,
    NotTheSeller,
    OrdersRepo,
    OrderSummary,
    OrderView,
    StatusChanged,
)
from nexuscart.adapters.reservations import ReservationStore
from nexuscart.app.errors import Refused, pg_errors, redis_errors
from nexuscart.app.payments import Payments, RefundView
from nexuscart.domain import orders as rules

ID_MAX: Final = 2**63 - 1
_NS: Final = uuid.UUID("0f7e3c52-8a4b-4c8e-9e35-6a1d2b9c4f70")
NOT_FOUND: Final = (404, "not-found", "No such order")

Status = Literal[
    "PENDING_PAYMENT", "PAID", "FULFILLING", "SHIPPED", "DELIVERED", "CANCELLED", "EXPIRED",
    "REFUNDED",
]  # fmt: skip
# a carrier's reference: printable, no spaces at the ends (checked below), bounded
Tracking = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]


class FulfilmentSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Annotated[int, msgspec.Meta(ge=1, le=ID_MAX)]  # the buyer (the order's shard)
    status: Literal["FULFILLING", "SHIPPED", "DELIVERED"]
    tracking_reference: Tracking | None = None  # required for SHIPPED
    # the status the operator saw (If-Match does the same): another change first -> 412
    expected_status: Status | None = None


class AdminCancel(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Annotated[int, msgspec.Meta(ge=1, le=ID_MAX)]  # the buyer (the order's shard)


class OrderPage(msgspec.Struct, frozen=True):
    items: list[OrderView]
    next_cursor: str | None


class AdminOrderPage(msgspec.Struct, frozen=True):
    items: list[OrderSummary]
    next_cursor: str | None


def event_id(order_id: int, what: str) -> uuid.UUID:
    """The id of a person's transition, derived from the order and the request, so a retry
    writes nothing new (the timeline row and the outbox event are keyed by it)."""
    return uuid.uuid5(_NS, f"{order_id}:{what}")


def expected_of(if_match: str | None, spec_expected: str | None) -> str | None:
    """The status the caller expects: ``If-Match: "PAID"`` (quotes and W/ optional) or the
    body's ``expected_status``; both must agree."""
    if if_match is None:
        return spec_expected
    tag = if_match.strip().removeprefix("W/").strip('"')
    if tag not in rules.STATES:
        raise Refused(400, "if-match-invalid", "If-Match is not an order status",
                      f"one of {', '.join(rules.STATES)}")  # fmt: skip
    if spec_expected is not None and spec_expected != tag:
        raise Refused(400, "if-match-invalid", "If-Match and expected_status differ")
    return tag


class Orders:
    def __init__(self, repo: OrdersRepo, reservations: ReservationStore, payments: Payments | None):
        self.repo = repo
        self.reservations = reservations
        self.payments = payments

    # -- reads ------------------------------------------------------------------------------

    async def view(self, user_id: int, order_id: int) -> OrderView:
        """One of the buyer's orders with its timeline."""
        with pg_errors():
            found = await self.repo.orders_of_user(user_id, order_id=order_id)
            if not found:
                raise Refused(*NOT_FOUND)
            timeline = await self.repo.timeline(user_id, order_id)
        return msgspec.structs.replace(found[0], timeline=timeline)

    async def mine(self, user_id: int, before: int | None, limit: int) -> OrderPage:
        with pg_errors():
            orders = await self.repo.orders_of_user(user_id, before=before, limit=limit + 1)
        nxt = str(orders[limit - 1].order_id) if len(orders) > limit else None
        return OrderPage(items=orders[:limit], next_cursor=nxt)

    async def listing(
        self, caller: int, is_admin: bool, status: str | None, before: int | None, limit: int
    ) -> AdminOrderPage:
        """Admins see every order; a seller the orders with a line of theirs."""
        if status is not None and status not in rules.STATES:
            raise Refused(
                400, "invalid-query", "Unknown status", f"one of {', '.join(rules.STATES)}"
            )
        with pg_errors():
            rows = await self.repo.admin_page(
                status, before, None if is_admin else caller, limit + 1
            )
        nxt = str(rows[limit - 1].order_id) if len(rows) > limit else None
        return AdminOrderPage(items=rows[:limit], next_cursor=nxt)

    # -- people's transitions -------------------------------------------------------------

    async def fulfil(
        self,
        caller: int,
        is_admin: bool,
        order_id: int,
        spec: FulfilmentSpec,
        key: str,
        if_match: str | None,
    ) -> OrderView:
        """Move an order along fulfilment, once per Idempotency-Key; only the seller of one
        of its lines or an admin; from the status the caller expects, if it says one."""
        if spec.status == rules.SHIPPED and spec.tracking_reference is None:
            raise Refused(
                422, "tracking-reference-required", "A shipment needs its tracking reference"
            )
        expected = expected_of(if_match, spec.expected_status)
        action = rules.FULFILMENT[spec.status]
        actor = "admin" if is_admin else "seller"
        eid = event_id(order_id, f"fulfil:{caller}:{key}")
        await self._move(
            spec.user_id, order_id, action, actor, caller, eid, action,
            expected=expected, tracking=spec.tracking_reference,
        )  # fmt: skip
        return await self.view(spec.user_id, order_id)

    async def _move(
        self,
        user_id: int,
        order_id: int,
        action: str,
        actor: str,
        actor_id: int,
        eid: uuid.UUID,
        reason: str,
        *,
        expected: str | None = None,
        tracking: str | None = None,
    ) -> str:
        try:
            with pg_errors():
                moved = await self.repo.transition(
                    user_id, order_id, action, actor, actor_id, eid, reason,
                    expected=expected, tracking=tracking,
                )  # fmt: skip
        except NotFound:
            raise Refused(*NOT_FOUND) from None
        except NotTheSeller:
            raise Refused(
                403, "not-the-seller", "Only the seller of the order's products or an admin"
            ) from None
        except StatusChanged as exc:
            raise Refused(412, "status-changed", "The order is not in the expected status",
                          f"it is {exc.status}") from None  # fmt: skip
        except rules.IllegalTransition as exc:
            raise Refused(
                409, "illegal-transition", "Not allowed in the order's status", str(exc)
            ) from None
        return moved.to_status

    async def cancel(
        self, user_id: int, order_id: int, admin_id: int | None = None
    ) -> OrderView | RefundView:
        """The buyer (or an admin: ``admin_id``) cancels before shipment, once per order: an
        unpaid everyday order's reservation is released (the order view answers, CANCELLED);
        a paid order is REFUNDED (the refund answers; its sold units go back on sale through
        the event). After shipment: 409."""
        actor, actor_id = ("buyer", user_id) if admin_id is None else ("admin", admin_id)
        with pg_errors():
            found = await self.repo.orders_of_user(user_id, order_id=order_id)
        if not found or (found[0].kind == "flash" and found[0].status == rules.PENDING_PAYMENT):
            # a payment without its order projected yet, or a flash-sale hold: only a paid
            # one is cancelled (refunded), as before the lifecycle existed
            return await self._refund(user_id, order_id, actor_id)
        order = found[0]
        status = order.status
        if status == rules.PENDING_PAYMENT:
            status = await self._release(user_id, order_id, actor, actor_id)
        if status in (rules.PAID, rules.FULFILLING):
            await self._move(user_id, order_id, "cancel", actor, actor_id,
                             event_id(order_id, "cancel"), f"{actor}_cancelled")  # fmt: skip
            status = rules.REFUNDED
        if status == rules.REFUNDED:
            try:
                return await self._refund(user_id, order_id, actor_id)
            except Refused as r:
                if r.status != 404:
                    raise
                # the intent's id is not stored yet (its webhook came first): the refund is
                # reserved, and the payments service sends it once it can
                raise Refused(503, "refund-pending", "The order is cancelled; the refund is "
                              "on its way", retry_after_s=1) from None  # fmt: skip
        if status == rules.CANCELLED:
            return await self.view(user_id, order_id)
        raise Refused(
            409, "not-cancellable", "The order can no longer be cancelled", f"it is {status}"
        )

    async def _release(self, user_id: int, order_id: int, actor: str, actor_id: int) -> str:
        """Release an unpaid everyday reservation; the order's status after it."""
        eid = event_id(order_id, "cancel")
        now = dt.datetime.now(dt.UTC).isoformat()
        with redis_errors():
            n = await self.reservations.release(
                order_id, user_id, "cancelled", str(uuid.uuid5(eid, "StockReleased")), now, False
            )
        if n > 0:
            try:
                await self._move(
                    user_id, order_id, "cancel", actor, actor_id, eid, f"{actor}_cancelled"
                )
            except Refused as r:
                if r.status != 409:  # the release's own event got there first: cancelled
                    raise
            return rules.CANCELLED
        # the reservation had ended already (paid, expired, cancelled): the projection may
        # not show it yet
        with pg_errors():
            found = await self.repo.orders_of_user(user_id, order_id=order_id)
        status = found[0].status if found else rules.PENDING_PAYMENT
        if status == rules.PENDING_PAYMENT:
            raise Refused(409, "order-changing", "The order is changing (paid or expired)",
                          "try again in a moment", retry_after_s=1)  # fmt: skip
        return status

    async def _refund(self, user_id: int, order_id: int, actor_id: int) -> RefundView:
        if self.payments is None:
            raise RuntimeError("Orders.payments is needed to refund")
        return await self.payments.refund_request(
            user_id, order_id, None, "cancelled", "", actor_id
        )
