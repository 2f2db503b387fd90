"""Cart and checkout routes: thin HTTP handlers over ``nexuscart.app.cart`` and
``nexuscart.app.checkout`` (docs/cart-checkout.md).

The cart routes are public: a request with a valid ``Authorization`` token uses the
shopper's cart; otherwise (no token, or one that does not verify: expired, revoked) the
guest cart named by the ``Cart-Token`` header. The first add without either creates a
guest cart and answers its token in ``Cart-Token``. ``POST /cart/merge`` (signed in, with
the guest's ``Cart-Token``) moves a guest cart into the shopper's, e.g. right after
logging in.
"""

from __future__ import annotations

import contextlib
from typing import Final

from edge.access import user_of
from edge.deps import Deps
from edge.http import handles_refusals, idem_key, refused
from nexuscart.app.cart import AddItem, CartView, Owner, SetQuantity
from nexuscart.app.checkout import CheckoutAnswer, CheckoutRequest, StockShort
from nexuscart.app.errors import Refused, Unavailable
from nexuscart.auth import AuthError
from nexuscart.domain import cart as rules
from nexuscart.web import (
    DependencyUnavailable,
    HTTPError,
    Request,
    Response,
    Route,
    decode_body,
    json_response,
    problem_response,
)

TOKEN_HEADER: Final = "cart-token"


def _token(req: Request) -> str | None:
    token = req.header(TOKEN_HEADER)
    if token is None:
        return None
    if not rules.valid_token(token):
        raise HTTPError(
            400, "bad-cart-token", "Cart-Token is invalid", f"{rules.TOKEN_LEN} URL-safe characters"
        )
    return token


def _sku(req: Request) -> str:
    sku = req.params["sku"]
    if not rules.valid_sku(sku):
        raise HTTPError(404, "not-in-cart", "Not in the cart", "no line of this SKU")
    return sku


def routes(deps: Deps) -> list[Route]:
    carts = deps.carts
    checkout_uc = deps.checkout
    principal = deps.verifier.principal
    signals = deps.recs_signals

    def owner(req: Request) -> Owner | None:
        auth = req.header("authorization")
        if auth is not None:
            # public routes read no credential they must answer 401 for: a token that does
            # not verify (expired, revoked) leaves the request a guest's
            with contextlib.suppress(AuthError):
                return Owner(user_id=principal(auth)[0])
        token = _token(req)
        return None if token is None else Owner(token=token)

    @handles_refusals
    async def get_cart(req: Request) -> Response:
        who = owner(req)
        if who is None:
            return json_response(CartView([], None, 0, False, ""))
        return json_response(await carts.view(who))

    @handles_refusals
    async def add_item(req: Request) -> Response:
        key = idem_key(req)
        body = decode_body(req, AddItem)
        who = owner(req)
        headers = []
        if who is None:
            who = Owner(token=carts.new_token())
            headers.append((TOKEN_HEADER, who.token or ""))
        view = await carts.add(who, body, key)
        if who.user_id is not None:  # a guest's add says nothing about a known shopper
            signals.added_to_cart(who.user_id, body.product_id, body.sku, body.quantity)
        return json_response(view, headers=headers)

    @handles_refusals
    async def set_quantity(req: Request) -> Response:
        key = idem_key(req)
        sku = _sku(req)
        body = decode_body(req, SetQuantity)
        who = owner(req)
        if who is None:
            raise HTTPError(404, "not-in-cart", "Not in the cart", "no cart (Cart-Token)")
        return json_response(await carts.set_quantity(who, sku, body.quantity, key))

    @handles_refusals
    async def remove_item(req: Request) -> Response:
        key = idem_key(req)
        sku = _sku(req)
        who = owner(req)
        if who is None:
            raise HTTPError(404, "not-in-cart", "Not in the cart", "no cart (Cart-Token)")
        return json_response(await carts.set_quantity(who, sku, 0, key))

    @handles_refusals
    async def merge(req: Request) -> Response:
        idem_key(req)  # merging twice is merging once: the guest cart is gone after the first
        token = _token(req)
        if token is None:
            raise HTTPError(400, "bad-cart-token", "Cart-Token required", "the guest cart's token")
        return json_response(await carts.merge(user_of(req), token))

    async def checkout(req: Request) -> Response:
        key = idem_key(req)
        body = decode_body(req, CheckoutRequest) if req.body else CheckoutRequest()
        try:
            placed, replayed = await checkout_uc.checkout(user_of(req), key, body)
        except StockShort as short:
            err = HTTPError(
                409,
                short.slug,
                short.title,
                short.detail,
                errors=[f"{sku}: {n} available" for sku, n in short.lines],
            )
            return problem_response(err, req.path)
        except Refused as r:
            return refused(r, req.path)
        except Unavailable as exc:
            raise DependencyUnavailable(exc.dependency) from exc
        headers = [("idempotent-replayed", "true")] if replayed else []
        return json_response(placed, status=202, headers=headers)

    return [
        Route(
            "GET",
            "/cart",
            get_cart,
            "The cart (the shopper's with a token, else the guest's by Cart-Token) at today's "
            "prices and stock",
            responses={200: CartView},
            tags=("cart",),
        ),
        Route(
            "POST",
            "/cart/items",
            add_item,
            "Add units of a SKU (a guest's first add answers a new Cart-Token)",
            request=AddItem,
            responses={200: CartView},
            idempotent_key=True,
            problems=(409,),
            tags=("cart",),
        ),
        Route(
            "PUT",
            "/cart/items/{sku}",
            set_quantity,
            "Set a line's quantity (0 removes it)",
            request=SetQuantity,
            responses={200: CartView},
            params=("sku",),
            idempotent_key=True,
            problems=(404,),
            tags=("cart",),
        ),
        Route(
            "DELETE",
            "/cart/items/{sku}",
            remove_item,
            "Remove a line",
            responses={200: CartView},
            params=("sku",),
            idempotent_key=True,
            problems=(404,),
            tags=("cart",),
        ),
        Route(
            "POST",
            "/cart/merge",
            merge,
            "Move the guest cart of Cart-Token into the signed-in shopper's cart",
            responses={200: CartView},
            idempotent_key=True,
            tags=("cart",),
        ),
        Route(
            "POST",
            "/checkout",
            checkout,
            "Check the cart out: re-priced, promotion applied, every line reserved (all or "
            "nothing) until expires_at_ms; pay at GET /orders/{id}/payment",
            request=CheckoutRequest,
            responses={202: CheckoutAnswer},
            idempotent_key=True,
            problems=(409, 422),
            tags=("checkout",),
        ),
    ]
