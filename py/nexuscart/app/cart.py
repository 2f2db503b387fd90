"""Cart use cases (docs/cart-checkout.md): a guest's cart by its token, a shopper's by user
id, merged at ``POST /cart/merge``; add, set quantity, remove; a cart shown at today's
prices and availability. Rules in ``domain.cart``; storage in ``adapters.carts``.

Prices come from the catalog's product pages (cached per worker, dropped on every product
change) and availability from the checkout's stock counters, read by the same script call
as the cart (each SKU's copy of the catalog's level less what is reserved and sold: what
the catalog's live stock read answers), so a cart read or change is one Redis round trip
(two for a SKU the counters have never seen: the catalog's live read for it).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Annotated

import msgspec

from nexuscart.adapters.carts import Cart, CartRefused, CartStore, guest_cart, user_cart
from nexuscart.app.catalog import Catalog
from nexuscart.app.errors import Refused, redis_errors
from nexuscart.domain import cart as rules
from nexuscart.domain.cart import Offer, PricedCart

Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=rules.MAX_QUANTITY)]


class AddItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    product_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    sku: Sku
    quantity: Quantity = 1


class SetQuantity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(ge=0, le=rules.MAX_QUANTITY)]  # 0 removes


class CartLineView(msgspec.Struct, frozen=True):
    sku: str
    product_id: int
    quantity: int
    unit_price_minor: int  # today's price
    price_when_added_minor: int | None  # set only when today's price differs
    currency: str
    line_total_minor: int
    stock_status: str  # in_stock | low_stock | out_of_stock | unavailable
    available: int


class CartView(msgspec.Struct, frozen=True):
    lines: list[CartLineView]
    currency: str | None
    subtotal_minor: int
    price_changed: bool  # a checkout needs expected_total_minor (the subtotal shown here)
    version: str


class Owner(msgspec.Struct, frozen=True):
    """Whose cart: a signed-in shopper (``user_id``) or a guest (``token``)."""

    user_id: int | None = None
    token: str | None = None

    def key(self) -> bytes:
        if self.user_id is not None:
            return user_cart(self.user_id)
        assert self.token is not None
        return guest_cart(self.token)


class _VariantOffer(msgspec.Struct):
    sku: str
    price_minor: int
    currency: str
    low_stock_threshold: int
    available: int


class _ProductOffer(msgspec.Struct):
    product_id: int
    category_id: int
    status: str
    variants: list[_VariantOffer]


_offer_decoder = msgspec.json.Decoder(_ProductOffer)


class Carts:
    def __init__(self, store: CartStore, catalog: Catalog):
        self.store = store
        self.catalog = catalog
        # product id -> (the page it was read from, its offers): redone when the page is
        self._offers: dict[int, tuple[object, _ProductOffer | None]] = {}

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(rules.TOKEN_BYTES)

    async def product(self, product_id: int) -> _ProductOffer | None:
        """The product as its (cached) page shows it; None when there is none."""
        page = await self.catalog.page(product_id)
        hit = self._offers.get(product_id)
        if hit is not None and hit[0] is page:
            return hit[1]
        offer = None if page is None else _offer_decoder.decode(page.body)
        if len(self._offers) >= 100_000:
            self._offers.clear()
        self._offers[product_id] = (page, offer)
        return offer

    async def offers(
        self, lines: Sequence[tuple[str, int]]
    ) -> tuple[dict[str, Offer | None], dict[str, int]]:
        """Today's offer (None: not on sale) and page-time availability of (sku, product)."""
        offers: dict[str, Offer | None] = {}
        shown: dict[str, int] = {}
        for sku, pid in lines:
            p = await self.product(pid)
            offers[sku] = None
            if p is None or p.status != "active":
                continue
            for v in p.variants:
                if v.sku == sku:
                    offers[sku] = Offer(
                        pid, p.category_id, v.price_minor, v.currency, v.low_stock_threshold
                    )
                    shown[sku] = v.available
        return offers, shown

    async def _available(self, cart: Cart, shown: dict[str, int]) -> dict[str, int]:
        """Each line's units available: the counters' figure read with the cart; the
        catalog's live read for a SKU they do not know (the page's when neither does)."""
        avail = dict(cart.available or {})
        skus = [ln.sku for ln in cart.lines if ln.sku not in avail]
        if skus:
            with redis_errors():
                levels = await self.catalog.store.levels(skus)
            for s, lv in zip(skus, levels, strict=True):
                avail[s] = shown.get(s, 0) if lv is None else lv.stock
        return avail

    async def priced(self, cart: Cart) -> PricedCart:
        offers, shown = await self.offers([(ln.sku, ln.product_id) for ln in cart.lines])
        return rules.price(cart.lines, offers, await self._available(cart, shown))

    async def read(self, owner: Owner) -> tuple[Cart, PricedCart]:
        with redis_errors():
            cart = await self.store.read(owner.key())
        return cart, await self.priced(cart)

    async def products_in(self, user_id: int, n: int) -> list[int]:
        """The shopper's cart's products, the largest lines first, ``n`` at most; the cart
        is read as it is (its expiry is the shopper's, not renewed by this read)."""
        with redis_errors():
            cart = await self.store.peek(user_cart(user_id))
        return rules.main_products(cart.lines, n)

    async def view(self, owner: Owner) -> CartView:
        cart, priced = await self.read(owner)
        return to_view(cart, priced)

    async def add(self, owner: Owner, body: AddItem, idem: str = "") -> CartView:
        if not rules.valid_sku(body.sku):
            raise Refused(422, "validation-error", "Invalid SKU", "sku: 1-64 of A-Z a-z 0-9 . _ -")
        offers, _ = await self.offers([(body.sku, body.product_id)])
        offer = offers[body.sku]
        if offer is None:
            raise Refused(
                409, "product-unavailable", "Not on sale", f"{body.sku} of {body.product_id}"
            )
        try:
            with redis_errors():
                cart = await self.store.add(
                    owner.key(),
                    body.sku,
                    body.product_id,
                    body.quantity,
                    offer.price_minor,
                    offer.currency,
                    idem,
                )
        except CartRefused as exc:
            raise _refusal(exc) from None
        return to_view(cart, await self.priced(cart))

    async def set_quantity(self, owner: Owner, sku: str, quantity: int, idem: str = "") -> CartView:
        try:
            with redis_errors():
                cart = await self.store.set_quantity(owner.key(), sku, quantity, idem)
        except CartRefused as exc:
            raise _refusal(exc) from None
        return to_view(cart, await self.priced(cart))

    async def merge(self, user_id: int, token: str) -> CartView:
        """The guest cart's lines into the shopper's (idempotent: the guest cart is gone
        after the first merge)."""
        with redis_errors():
            await self.store.merge(user_cart(user_id), guest_cart(token))
        return await self.view(Owner(user_id=user_id))


def to_view(cart: Cart, priced: PricedCart) -> CartView:
    return CartView(
        lines=[
            CartLineView(
                sku=ln.sku,
                product_id=ln.product_id,
                quantity=ln.quantity,
                unit_price_minor=ln.unit_price_minor,
                price_when_added_minor=ln.price_seen_minor if ln.price_changed else None,
                currency=ln.currency,
                line_total_minor=ln.line_total_minor,
                stock_status=ln.stock_status,
                available=ln.available,
            )
            for ln in priced.lines
        ],
        currency=priced.currency,
        subtotal_minor=priced.subtotal_minor,
        price_changed=priced.price_changed,
        version=cart.version,
    )


_CART_REFUSALS = {
    "mixed-currency": (409, "Cart holds another currency", "one currency per cart"),
    "quantity-limit": (422, "Too many units", f"at most {rules.MAX_QUANTITY} per line"),
    "cart-full": (409, "Cart is full", f"at most {rules.MAX_LINES} lines"),
    "not-in-cart": (404, "Not in the cart", "no line of this SKU"),
}


def _refusal(exc: CartRefused) -> Refused:
    status, title, detail = _CART_REFUSALS[exc.reason]
    return Refused(status, exc.reason, title, detail)
