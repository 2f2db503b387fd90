"""Payment routes: the provider's webhook, the buyer's view of an order's payment and their
cancellation of a paid order, admins' refunds. Thin: the use cases are in
nexuscart/app/payments.py."""

from __future__ import annotations

from typing import Annotated

import msgspec

from edge.access import user_of
from edge.deps import Deps
from edge.http import handles_refusals, idem_key
from nexuscart.adapters.orders_repo import OrderView
from nexuscart.app.errors import Refused
from nexuscart.app.payments import PaymentView, RefundView, WebhookOutcome
from nexuscart.domain.payments import MAX_AMOUNT_CENTS
from nexuscart.web import ID_MAX, Request, Response, Route, decode_body, json_response, path_int


class RefundSpec(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Annotated[int, msgspec.Meta(ge=1, le=ID_MAX)]  # the buyer (the payment's shard)
    # null: everything not refunded yet
    amount_cents: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT_CENTS)] | None = None


def routes(deps: Deps) -> list[Route]:
    payments, orders = deps.payments, deps.orders
    if payments is None or orders is None:
        raise RuntimeError("edge.deps.build sets Deps.payments and Deps.orders")

    metrics = deps.metrics

    @handles_refusals
    async def stripe_webhook(req: Request) -> Response:
        try:
            out = await payments.receive_webhook(req.body, req.header("stripe-signature"))
        except Refused as r:
            metrics.inc("payments_webhooks_total", f'outcome="{r.slug}"')
            raise
        metrics.inc("payments_webhooks_total", f'outcome="{out.outcome}"')
        return json_response(out)

    @handles_refusals
    async def order_payment(req: Request) -> Response:
        return json_response(await payments.buyer_payment(user_of(req), path_int(req, "order_id")))

    @handles_refusals
    async def cancel_order(req: Request) -> Response:
        idem_key(req)  # required: a cancellation is once per order whatever the key
        out = await orders.cancel(user_of(req), path_int(req, "order_id"))
        # a refund was made (a paid order): 201; an unpaid one cancelled: the order, 200
        return json_response(out, status=201 if isinstance(out, RefundView) else 200)

    @handles_refusals
    async def admin_refund(req: Request) -> Response:
        key = idem_key(req)
        spec = decode_body(req, RefundSpec)
        view = await payments.refund_request(
            spec.user_id, path_int(req, "order_id"), spec.amount_cents, "admin", key, user_of(req)
        )
        return json_response(view, status=201)

    # who may call each route: edge/access.py
    return [
        Route(
            "POST",
            "/webhooks/stripe",
            stripe_webhook,
            "Stripe's webhook: signed events (Stripe-Signature), recorded durably in the "
            "payments inbox before the 200 and applied by the payments service once per event "
            "id; 503 with Retry-After while the inbox is full",
            responses={200: WebhookOutcome},
            tags=("payments",),
        ),
        Route(
            "GET",
            "/orders/{order_id}/payment",
            order_payment,
            "The payment of one of the buyer's orders (status, client secret)",
            responses={200: PaymentView},
            tags=("payments",),
            params=("order_id",),
        ),
        Route(
            "POST",
            "/orders/{order_id}/cancel",
            cancel_order,
            "Cancel an order before shipment, once: an unpaid everyday order's reservation is "
            "released (200, the order CANCELLED); a paid order is REFUNDED: everything captured "
            "is refunded (201, the refund) and its units go back on sale",
            responses={201: RefundView, 200: OrderView},
            idempotent_key=True,
            problems=(409,),
            tags=("payments",),
            params=("order_id",),
        ),
        Route(
            "POST",
            "/admin/orders/{order_id}/refunds",
            admin_refund,
            "Refund a payment in full or in part (never above what was captured)",
            request=RefundSpec,
            responses={201: RefundView},
            idempotent_key=True,
            problems=(409,),
            tags=("admin", "payments"),
            params=("order_id",),
        ),
    ]
