"""Who may call which route: THE one table (``POLICIES``) and the guards built from it.

A policy is one of:

- ``public``: anyone, no credential read;
- ``user``: any signed-in user (a valid access token with at least one known role);
- ``customer``: a token with the ``customer`` role (buyers);
- ``seller``: ``seller`` or ``admin``;
- ``admin``: ``admin``.

Every route of the edge must have an entry (``apply`` refuses to build the app otherwise),
so a new route cannot ship without someone deciding who may call it. The guards run before
any body byte is read: no or a bad, expired or revoked token is 401 ``unauthorized`` (with
``WWW-Authenticate: Bearer``); a valid token without the role is 403 ``forbidden``. A
guard returns the principal ``(user id, role bits)``, which handlers find in
``req.principal`` (``user_of`` / ``roles_of``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final, Literal, cast

from nexuscart import _core
from nexuscart.auth import ROLE_BITS, AuthError
from nexuscart.web import Guard, HTTPError, Request, Route

Policy = Literal["public", "user", "customer", "seller", "admin"]

# (method, path template) -> policy. ACCOUNTS' routes are added here as they land.
POLICIES: Final[dict[tuple[str, str], Policy]] = {
    # operations
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/openapi.json"): "public",
    # flash sales
    ("POST", "/admin/flash-sales"): "admin",
    ("PATCH", "/admin/flash-sales/{sale_id}"): "admin",
    ("POST", "/admin/flash-sales/{sale_id}/end"): "admin",
    ("GET", "/flash-sales/{sale_id}"): "public",
    ("POST", "/flash-sales/{sale_id}/purchase"): "customer",
    # a user's own orders: anyone signed in may read theirs (a seller or admin who bought
    # as a customer before losing that role still sees the orders)
    ("GET", "/orders/{order_id}"): "user",
    ("GET", "/users/me/orders"): "user",
    # fulfilment and the operators' listing: sellers (of one of the order's products, checked
    # by the use case) and admins; a seller's listing shows only orders with a line of theirs
    ("POST", "/orders/{order_id}/fulfilment"): "seller",
    ("GET", "/admin/orders"): "seller",
    ("POST", "/admin/orders/{order_id}/cancel"): "admin",
    # accounts: the credential of the /auth routes is in their body (a password or a
    # refresh token), checked by the handler
    ("POST", "/auth/register"): "public",
    ("POST", "/auth/login"): "public",
    ("POST", "/auth/refresh"): "public",
    ("POST", "/auth/logout"): "public",
    ("GET", "/users/me"): "user",
    ("PATCH", "/users/me"): "user",
    ("POST", "/users/me/password"): "user",
    ("GET", "/admin/users"): "admin",
    ("PATCH", "/admin/users/{user_id}/roles"): "admin",
    ("POST", "/admin/users/{user_id}/disable"): "admin",
    ("POST", "/admin/users/{user_id}/enable"): "admin",
    # catalog: public reads (drafts and archived products only for their seller and admins,
    # checked by the handler); writes by sellers on their own products, admins on any
    ("GET", "/products/{product_id}"): "public",
    ("GET", "/products"): "public",
    ("GET", "/categories"): "public",
    ("GET", "/inventory"): "public",
    ("POST", "/products"): "seller",
    ("PATCH", "/products/{product_id}"): "seller",
    ("POST", "/products/{product_id}/archive"): "seller",
    ("POST", "/products/{product_id}/variants"): "seller",
    ("PATCH", "/products/{product_id}/variants/{sku}"): "seller",
    ("POST", "/products/{product_id}/variants/{sku}/stock"): "seller",
    # search: active products only, the same answer for everyone
    ("GET", "/search"): "public",
    # payments: the provider's webhook carries no token, its signature is the credential
    # (checked by the handler against STRIPE_WEBHOOK_SECRET); a buyer's own order's payment
    # and cancellation (the order is looked up under the caller's user id); refunds by admins
    ("POST", "/webhooks/stripe"): "public",
    ("GET", "/orders/{order_id}/payment"): "user",
    ("POST", "/orders/{order_id}/cancel"): "user",
    ("POST", "/admin/orders/{order_id}/refunds"): "admin",
    # carts: a guest's by its Cart-Token, a shopper's by the (optional) token, checked by the
    # handler; merging into and checking out one's own cart need a customer token
    ("GET", "/cart"): "public",
    ("POST", "/cart/items"): "public",
    ("PUT", "/cart/items/{sku}"): "public",
    ("DELETE", "/cart/items/{sku}"): "public",
    ("POST", "/cart/merge"): "customer",
    ("POST", "/checkout"): "customer",
    # promotions: admins only
    ("POST", "/admin/promotions"): "admin",
    ("GET", "/admin/promotions"): "admin",
    ("POST", "/admin/promotions/{code}/deactivate"): "admin",
    # recommendations (docs/recommendations.md)
    ("GET", "/recommendations/me"): "user",
    ("GET", "/products/{product_id}/similar"): "public",
    ("GET", "/admin/recommendations/models"): "admin",
    ("POST", "/admin/recommendations/models/promote"): "admin",
    ("POST", "/admin/recommendations/models/rollback"): "admin",
    ("POST", "/admin/recommendations/experiments"): "admin",
    ("GET", "/admin/recommendations/experiments/results"): "admin",
}

# policy -> the role bits of which at least one is needed
_NEEDS: Final[dict[str, int]] = {
    "user": ROLE_BITS["customer"] | ROLE_BITS["seller"] | ROLE_BITS["admin"],
    "customer": ROLE_BITS["customer"],
    "seller": ROLE_BITS["seller"] | ROLE_BITS["admin"],
    "admin": ROLE_BITS["admin"],
}
GUARDED: Final = tuple(_NEEDS)  # the policies that need a token (Route.auth values)

Principal = tuple[int, int]  # (user id, role bits)


def policy_of(method: str, path: str) -> Policy | None:
    return POLICIES.get((method, path))


def apply(routes: Iterable[Route]) -> list[Route]:
    """The routes with ``auth`` set from the table (None for public routes). Raises
    ValueError for a route without an entry, or one whose ``auth`` says otherwise."""
    out: list[Route] = []
    missing: list[str] = []
    for r in routes:
        policy = POLICIES.get((r.method, r.path))
        if policy is None:
            missing.append(f"{r.method} {r.path}")
            continue
        auth = None if policy == "public" else policy
        if r.auth is not None and r.auth != auth:
            raise ValueError(f"{r.method} {r.path}: auth {r.auth!r} but the table says {policy!r}")
        out.append(dataclasses.replace(r, auth=auth) if r.auth != auth else r)
    if missing:
        raise ValueError(f"routes missing from the access table (edge/access.py): {missing}")
    return out


def user_of(req: Request) -> int:
    """The signed-in user's id (set by the guard before the handler runs)."""
    return cast(Principal, req.principal)[0]


def roles_of(req: Request) -> int:
    """The signed-in user's role bits."""
    return cast(Principal, req.principal)[1]


def guards(verifier: _core.TokenVerifier) -> dict[str, Guard]:
    """Route.auth (a policy) -> the check the App runs before reading any body byte."""
    principal = verifier.principal

    def guard(policy: str, needs: int) -> Guard:
        detail = {
            "user": "this route needs a signed-in user with a role",
            "seller": "this route needs the seller or admin role",
        }.get(policy, f"this route needs the {policy} role")

        def check(req: Request) -> Principal:
            try:
                p = principal(req.header("authorization"))
            except AuthError as exc:
                raise HTTPError(
                    401,
                    "unauthorized",
                    "Valid access token required",
                    str(exc),
                    headers=[("www-authenticate", "Bearer")],
                ) from None
            if not p[1] & needs:
                raise HTTPError(403, "forbidden", "Not allowed for your role", detail)
            return p

        return check

    return {policy: guard(policy, needs) for policy, needs in _NEEDS.items()}
