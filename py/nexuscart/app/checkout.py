"""The everyday checkout (docs/cart-checkout.md): the shopper's cart re-priced from the
catalog, the promotion applied, then one script reserves every line (all or nothing),
counts the promotion's use, writes OrderPlaced to the outbox and empties the cart
(adapters/reservations.py). The order then awaits payment like a flash-sale order.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from nexuscart.adapters.carts import user_cart
from nexuscart.adapters.catalog_repo import CatalogRepo
from nexuscart.adapters.reservations import (
    CheckoutResult,
    Line,
    Placed,
    Rejected,
    ReservationStore,
    Short,
    answer_read,
    stored_answer,
)
from nexuscart.app.cart import Carts
from nexuscart.app.errors import Refused, pg_errors, redis_errors
from nexuscart.app.promotions import Promotions
from nexuscart.domain import cart as cart_rules
from nexuscart.domain import promotions as promo_rules
from nexuscart.events import EventIds

ATTEMPTS: Final = 3  # a cart changed (or a promotion republished) between read and script


class CheckoutRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    promo_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    # the total the shopper was shown (after the discount): needed when a price moved
    expected_total_minor: Annotated[int, msgspec.Meta(ge=0, le=10**15)] | None = None


class CheckoutAnswer(msgspec.Struct, frozen=True):
    order_id: int
    status: str  # pending_payment
    currency: str
    subtotal_minor: int
    discount_minor: int
    total_minor: int
    promo_code: str | None
    expires_at_ms: int  # the reservation lapses unpaid at this time
    payment: str  # where the client secret appears once payments opened the intent


class StockShort(Refused):
    """409: the stock cannot cover these lines (sku, available); nothing was reserved."""

    def __init__(self, lines: list[tuple[str, int]]):
        names = ", ".join(f"{sku} ({n} available)" for sku, n in lines)
        super().__init__(409, "insufficient-stock", "Not enough stock for some lines", names)
        self.lines = lines


def fingerprint(body: CheckoutRequest) -> str:
    """What tells a replay from another request under the same key."""
    raw = f"{body.promo_code or ''}\x00{body.expected_total_minor}".encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def answer(p: Placed) -> CheckoutAnswer:
    return CheckoutAnswer(
        order_id=p.order_id,
        status="pending_payment",
        currency=p.currency,
        subtotal_minor=p.subtotal_minor,
        discount_minor=p.discount_minor,
        total_minor=p.total_minor,
        promo_code=p.promo_code,
        expires_at_ms=p.expires_at_ms,
        payment=f"/orders/{p.order_id}/payment",
    )


_REJECTIONS: Final = {
    "idempotency-key-reused": (422, "Idempotency-Key reused", "same key, another request"),
    "promo-used-up": (409, "Promotion used up", "every use of the code is taken"),
    "promo-user-limit": (409, "Promotion limit reached", "you have used this code already"),
    "promo-unavailable": (409, "Promotion not valid", "the code is not valid now"),
    "cart-changed": (409, "Cart changed", "the cart changed during the checkout: retry"),
}


class Checkout:
    def __init__(
        self,
        carts: Carts,
        reservations: ReservationStore,
        promotions: Promotions,
        catalog_repo: CatalogRepo,
        ttl_s: int,
    ):
        self.carts = carts
        self.reservations = reservations
        self.promotions = promotions
        self.catalog_repo = catalog_repo
        self.ttl_ms = ttl_s * 1000
        self.event_ids = EventIds()

    async def checkout(
        self, user_id: int, key: str, body: CheckoutRequest
    ) -> tuple[CheckoutAnswer, bool]:
        """-> (the order to pay, replayed)."""
        fp = fingerprint(body)
        for attempt in range(ATTEMPTS):
            placed = await self._attempt(user_id, key, body, fp, attempt > 0)
            if placed is not None:
                return answer(placed), placed.replayed
        r = _REJECTIONS["cart-changed"]
        raise Refused(r[0], "cart-changed", r[1], r[2])

    async def _attempt(
        self, user_id: int, key: str, body: CheckoutRequest, fp: str, republished: bool
    ) -> Placed | None:
        owner_key = user_cart(user_id)
        with redis_errors():
            cart, (raw,) = await self.carts.store.get_with(owner_key, answer_read(user_id, key))
        prior = stored_answer(raw)
        if prior is not None:
            if prior[0] != fp:
                r = _REJECTIONS["idempotency-key-reused"]
                raise Refused(r[0], "idempotency-key-reused", r[1], r[2])
            return prior[1]
        if not cart.lines:
            raise Refused(409, "cart-empty", "The cart is empty", "add items before checkout")
        offers, _ = await self.carts.offers([(ln.sku, ln.product_id) for ln in cart.lines])
        priced = cart_rules.price(cart.lines, offers, {})
        if priced.unavailable:
            raise Refused(
                409,
                "product-unavailable",
                "Some lines are not on sale",
                ", ".join(priced.unavailable),
            )
        assert priced.currency is not None
        code = promo_rules.normal_code(body.promo_code) if body.promo_code else None
        discount = 0
        items: list[promo_rules.Item] = []
        if code is not None:
            promo = await self.promotions.lookup(code)
            if promo is None:
                raise Refused(409, "promo-unavailable", "Promotion not valid", "no such code")
            items = [
                promo_rules.Item(ln.sku, ln.category_id, ln.line_total_minor) for ln in priced.lines
            ]
            out = promo_rules.discount(promo, items, priced.currency, _now_ms())
            if out.refusal is not None:
                raise Refused(409, out.refusal, "Promotion does not apply", out.detail)
            discount = out.discount_minor
        total = priced.subtotal_minor - discount
        why = cart_rules.charge_refusal(priced, total, body.expected_total_minor)
        if why is not None:
            moved = ", ".join(
                f"{ln.sku} {ln.price_seen_minor} -> {ln.unit_price_minor}"
                for ln in priced.lines
                if ln.price_changed
            )
            raise Refused(
                409,
                why,
                "Prices changed since you saw them",
                f"total now {total}{'; ' + moved if moved else ''}: confirm with "
                "expected_total_minor",
            )
        # The counters keep a copy of each SKU's catalog level (every writer of the level
        # updates it): reserve with it, one round trip. Short lines may be a restock the
        # copy has not seen (or a SKU it never saw): read the catalog's levels, try again.
        res: CheckoutResult | None = None
        levels: dict[str, tuple[int | None, int | None]] = {}
        for _ in range(2):
            lines = [
                Line(
                    ln.sku,
                    ln.product_id,
                    ln.quantity,
                    ln.unit_price_minor,
                    *levels.get(ln.sku, (None, None)),
                )
                for ln in priced.lines
            ]
            with redis_errors():
                res = await self.reservations.checkout(
                    user_id=user_id,
                    idem=key,
                    fingerprint=fp,
                    lines=lines,
                    currency=priced.currency,
                    subtotal_minor=priced.subtotal_minor,
                    discount_minor=discount,
                    total_minor=total,
                    promo_code=code,
                    ttl_ms=self.ttl_ms,
                    event_id=self.event_ids(),
                    occurred_at=datetime.now(UTC).isoformat(),
                    cart_key=owner_key,
                    cart_version=cart.version,
                )
            if not isinstance(res, Short) or levels:
                break
            levels = await self._catalog_levels([ln.sku for ln in priced.lines])
        if isinstance(res, Placed):
            return res
        if isinstance(res, Short):
            raise StockShort(res.lines)
        assert isinstance(res, Rejected)
        if res.reason == "cart-changed":
            return None
        if res.reason == "promo-unavailable" and code is not None and not republished:
            # this worker's copy may be stale (deactivated meanwhile), or Redis lost its
            # copy (restarted empty): PostgreSQL decides, and a valid code is written again
            fresh = await self.promotions.lookup(code, fresh=True)
            if (
                fresh is not None
                and promo_rules.discount(fresh, items, priced.currency, _now_ms()).refusal is None
            ):
                await self.promotions.republish(fresh)
                return None
        status, title, detail = _REJECTIONS[res.reason]
        raise Refused(status, res.reason, title, detail)

    async def _catalog_levels(self, skus: list[str]) -> dict[str, tuple[int | None, int | None]]:
        """Each SKU's catalog level (version, on_hand): Redis, else PostgreSQL."""
        with redis_errors():
            found = await self.reservations.catalog_levels(skus)
        out: dict[str, tuple[int | None, int | None]] = {
            s: (None, None) if lv is None else (lv.version, lv.stock)
            for s, lv in zip(skus, found, strict=True)
        }
        missing = [s for s, lv in zip(skus, found, strict=True) if lv is None]
        if missing:
            with pg_errors():
                rows = await self.catalog_repo.stock_by_sku(missing)
            for s, v in rows.items():
                out[s] = (v.stock_version, v.stock)
        return out


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
