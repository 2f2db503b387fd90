"""Order routes: the buyer's orders (with the timeline), the seller/admin listing,
fulfilment and an admin's cancellation. Thin: the use cases are in nexuscart/app/orders.py;
the buyer's cancellation is with the payment routes (edge/payments.py)."""

from __future__ import annotations

from edge.access import roles_of, user_of
from edge.deps import Deps
from edge.http import handles_refusals, idem_key
from nexuscart.adapters.orders_repo import OrderView
from nexuscart.app.orders import AdminCancel, AdminOrderPage, FulfilmentSpec, OrderPage
from nexuscart.app.payments import RefundView
from nexuscart.auth import ROLE_BITS
from nexuscart.domain.orders import STATES
from nexuscart.web import (
    ID_MAX,
    Request,
    Response,
    Route,
    decode_body,
    json_response,
    path_int,
    query_int,
)

_ADMIN = ROLE_BITS["admin"]
_PAGE_QUERY = (
    ("limit", "page size, 1-100 (default 20)", {"type": "integer", "minimum": 1, "maximum": 100}),
    (
        "cursor",
        "next_cursor of the previous page",
        {"type": "integer", "minimum": 0, "maximum": ID_MAX},
    ),
)


def routes(deps: Deps) -> list[Route]:
    orders = deps.orders
    if orders is None:
        raise RuntimeError("edge.deps.build sets Deps.orders")

    def page(req: Request) -> tuple[int | None, int]:
        return query_int(req, "cursor", None, 0, ID_MAX), query_int(req, "limit", 20, 1, 100)

    @handles_refusals
    async def get_order(req: Request) -> Response:
        return json_response(await orders.view(user_of(req), path_int(req, "order_id")))

    @handles_refusals
    async def my_orders(req: Request) -> Response:
        cursor, limit = page(req)
        return json_response(await orders.mine(user_of(req), cursor, limit))

    @handles_refusals
    async def admin_orders(req: Request) -> Response:
        cursor, limit = page(req)
        status = req.query_params().get("status")
        admin = bool(roles_of(req) & _ADMIN)
        return json_response(await orders.listing(user_of(req), admin, status, cursor, limit))

    @handles_refusals
    async def fulfilment(req: Request) -> Response:
        key = idem_key(req)
        spec = decode_body(req, FulfilmentSpec)
        admin = bool(roles_of(req) & _ADMIN)
        view = await orders.fulfil(
            user_of(req), admin, path_int(req, "order_id"), spec, key, req.header("if-match")
        )
        return json_response(view)

    @handles_refusals
    async def admin_cancel(req: Request) -> Response:
        idem_key(req)  # required: a cancellation is once per order whatever the key
        spec = decode_body(req, AdminCancel)
        out = await orders.cancel(spec.user_id, path_int(req, "order_id"), user_of(req))
        return json_response(out, status=201 if isinstance(out, RefundView) else 200)

    # who may call each route: edge/access.py
    return [
        Route(
            "GET",
            "/orders/{order_id}",
            get_order,
            "One of the buyer's orders, with the timeline of every transition",
            responses={200: OrderView},
            tags=("orders",),
            params=("order_id",),
        ),
        Route(
            "GET",
            "/users/me/orders",
            my_orders,
            "The buyer's orders (flash-sale and everyday), by order id descending",
            responses={200: OrderPage},
            tags=("orders",),
            query=_PAGE_QUERY,
        ),
        Route(
            "GET",
            "/admin/orders",
            admin_orders,
            "Orders by id descending, optionally of one status: every order for admins, the "
            "orders with a line of theirs for sellers",
            responses={200: AdminOrderPage},
            tags=("admin", "orders"),
            query=(
                ("status", "only orders in this status", {"type": "string", "enum": list(STATES)}),
                *_PAGE_QUERY,
            ),
        ),
        Route(
            "POST",
            "/orders/{order_id}/fulfilment",
            fulfilment,
            "Move a paid order to FULFILLING, SHIPPED (with its tracking reference) or "
            "DELIVERED: the seller of one of its products or an admin, once per "
            'Idempotency-Key; If-Match: "<status>" (or expected_status) refuses with 412 '
            "when someone changed it first",
            request=FulfilmentSpec,
            responses={200: OrderView},
            idempotent_key=True,
            problems=(403, 409, 412),
            tags=("orders",),
            params=("order_id",),
        ),
        Route(
            "POST",
            "/admin/orders/{order_id}/cancel",
            admin_cancel,
            "An admin cancels a buyer's order before shipment, as the buyer would: unpaid, "
            "its reservation released (200, the order CANCELLED); paid, REFUNDED and refunded "
            "(201, the refund)",
            request=AdminCancel,
            responses={201: RefundView, 200: OrderView},
            idempotent_key=True,
            problems=(409,),
            tags=("admin", "orders"),
            params=("order_id",),
        ),
    ]
