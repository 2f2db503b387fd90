"""Cart rules, pure (docs/cart-checkout.md): limits, the stored line, pricing a cart against
the catalog's current prices and availability, and what a checkout may charge.

A line keeps the unit price the shopper saw when they added it (``price_seen``); a cart
shows the current price, and both when they differ. A checkout never charges a price the
shopper has not seen: it is refused (price-changed) unless every line's current price is
the one seen, or the shopper echoes the new total they were shown (``expected_total``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple

from nexuscart.domain.catalog import SKU_PATTERN

MAX_LINES: Final = 50  # lines per cart
MAX_QUANTITY: Final = 99  # units per line
TOKEN_BYTES: Final = 32  # a guest cart token: 32 random bytes, URL-safe base64 (43 chars)
TOKEN_LEN: Final = 43
_TOKEN: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")
_SKU: Final = re.compile(SKU_PATTERN)

# stock_status of a line
IN_STOCK: Final = "in_stock"
LOW_STOCK: Final = "low_stock"
OUT_OF_STOCK: Final = "out_of_stock"
UNAVAILABLE: Final = "unavailable"  # the product is gone or no longer on sale


def valid_token(token: str) -> bool:
    return bool(_TOKEN.match(token))


def valid_sku(sku: str) -> bool:
    return bool(_SKU.match(sku))


class StoredLine(NamedTuple):
    """A line as the cart keeps it."""

    sku: str
    product_id: int
    quantity: int
    price_seen: int  # unit price (minor units) the shopper saw when adding it
    currency: str


def main_products(lines: Sequence[StoredLine], n: int) -> list[int]:
    """The distinct products of ``lines``, the largest line value (units x seen price)
    first, ties by product id: ``n`` at most."""
    value: dict[int, int] = {}
    for ln in lines:
        value[ln.product_id] = value.get(ln.product_id, 0) + ln.quantity * ln.price_seen
    return sorted(value, key=lambda p: (-value[p], p))[:n]


def encode_line(product_id: int, quantity: int, price_seen: int, currency: str) -> str:
    return f"{quantity}|{product_id}|{price_seen}|{currency}"


def decode_line(sku: str, raw: str) -> StoredLine:
    q, pid, price, cur = raw.split("|")
    return StoredLine(sku, int(pid), int(q), int(price), cur)


class Offer(NamedTuple):
    """What the catalog sells a SKU at now (None in ``offers``: not on sale)."""

    product_id: int
    category_id: int
    price_minor: int
    currency: str
    low_stock_threshold: int


class PricedLine(NamedTuple):
    sku: str
    product_id: int
    category_id: int
    quantity: int
    unit_price_minor: int  # current (the seen price when the product is not on sale)
    price_seen_minor: int
    currency: str
    line_total_minor: int
    price_changed: bool
    available: int
    stock_status: str


class PricedCart(NamedTuple):
    lines: list[PricedLine]
    currency: str | None
    subtotal_minor: int
    price_changed: bool  # some line's price is not the one the shopper saw
    unavailable: list[str]  # SKUs no longer on sale
    short: list[tuple[str, int]]  # (SKU, available) of lines asking more than available


def stock_status(available: int, threshold: int) -> str:
    if available <= 0:
        return OUT_OF_STOCK
    return LOW_STOCK if available <= threshold else IN_STOCK


def price(
    lines: Sequence[StoredLine],
    offers: Mapping[str, Offer | None],
    available: Mapping[str, int],
) -> PricedCart:
    """The cart at today's prices and stock. Lines in SKU order (stable across reads)."""
    out: list[PricedLine] = []
    unavailable: list[str] = []
    short: list[tuple[str, int]] = []
    subtotal = 0
    changed = False
    currency: str | None = None
    for ln in sorted(lines, key=lambda x: x.sku):
        offer = offers.get(ln.sku)
        avail = max(0, available.get(ln.sku, 0))
        if offer is None or offer.currency != ln.currency:
            unavailable.append(ln.sku)
            out.append(
                PricedLine(
                    ln.sku,
                    ln.product_id,
                    0,
                    ln.quantity,
                    ln.price_seen,
                    ln.price_seen,
                    ln.currency,
                    ln.quantity * ln.price_seen,
                    False,
                    0,
                    UNAVAILABLE,
                )
            )
            continue
        currency = offer.currency
        moved = offer.price_minor != ln.price_seen
        changed = changed or moved
        total = ln.quantity * offer.price_minor
        subtotal += total
        if avail < ln.quantity:
            short.append((ln.sku, avail))
        out.append(
            PricedLine(
                ln.sku,
                ln.product_id,
                offer.category_id,
                ln.quantity,
                offer.price_minor,
                ln.price_seen,
                offer.currency,
                total,
                moved,
                avail,
                stock_status(avail, offer.low_stock_threshold),
            )
        )
    if currency is None and lines:
        currency = lines[0].currency
    return PricedCart(out, currency, subtotal, changed, unavailable, short)


def charge_refusal(cart: PricedCart, total: int, expected_total: int | None) -> str | None:
    """Why the checkout may not charge ``total`` (None: it may): ``price-changed`` when a
    line's price moved since it was seen and the shopper did not confirm the new total, or
    the total they expected is not this one."""
    if expected_total is not None:
        return None if expected_total == total else "price-changed"
    return "price-changed" if cart.price_changed else None
