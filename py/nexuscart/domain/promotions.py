"""Promotion rules, pure (docs/cart-checkout.md): what a code is, whether it applies to a
cart, and the discount it gives.

A discount is computed on the lines the promotion applies to (every line when it names no
category and no SKU; else the lines whose SKU it names or whose product is in a category it
names): a percentage of their total rounded down, or a fixed amount capped at it. So a
discount is never negative and never above the subtotal, and the total never below zero
(property-tested in tests/test_promotions_rules.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, NamedTuple

import msgspec

CODE_PATTERN: Final = r"^[A-Z0-9][A-Z0-9_-]{2,31}$"
_CODE: Final = re.compile(CODE_PATTERN)
PERCENT: Final = "percent"
FIXED: Final = "fixed"
MAX_MINOR: Final = 10**12  # amounts (minor units) and spends
MAX_USES: Final = 10**9
MAX_TARGETS: Final = 100  # categories and SKUs a promotion may name (each)


def normal_code(code: str) -> str:
    """Codes are case-insensitive: kept and matched in upper case."""
    return code.strip().upper()


def valid_code(code: str) -> bool:
    return bool(_CODE.match(code))


class Promotion(msgspec.Struct, frozen=True):
    code: str
    kind: str  # percent | fixed
    value: int  # percent: 1..100; fixed: minor units of ``currency``
    currency: str | None  # fixed only
    min_spend_minor: int  # on the lines it applies to
    starts_at_ms: int
    ends_at_ms: int
    usage_limit: int  # uses in all (0: no limit)
    per_user_limit: int  # uses per shopper (0: no limit)
    category_ids: tuple[int, ...] = ()
    skus: tuple[str, ...] = ()
    active: bool = True


def problems(p: Promotion) -> list[str]:
    """Every rule the definition breaks (empty: valid)."""
    out: list[str] = []
    if not valid_code(p.code):
        out.append("code: 3-32 of A-Z 0-9 _ -, starting with a letter or digit")
    if p.kind == PERCENT:
        if not 1 <= p.value <= 100:
            out.append("value: a percentage 1-100")
        if p.currency is not None:
            out.append("currency: only for a fixed discount")
    elif p.kind == FIXED:
        if not 1 <= p.value <= MAX_MINOR:
            out.append(f"value: 1-{MAX_MINOR} minor units")
        if p.currency is None or not re.fullmatch(r"[A-Z]{3}", p.currency):
            out.append("currency: ISO 4217 code (upper case) for a fixed discount")
    else:
        out.append("kind: percent or fixed")
    if not 0 <= p.min_spend_minor <= MAX_MINOR:
        out.append(f"min_spend_minor: 0-{MAX_MINOR}")
    if not 0 <= p.starts_at_ms < p.ends_at_ms:
        out.append("window: 0 <= starts_at < ends_at")
    if not 0 <= p.usage_limit <= MAX_USES or not 0 <= p.per_user_limit <= MAX_USES:
        out.append(f"usage limits: 0 (none) to {MAX_USES}")
    if len(p.category_ids) > MAX_TARGETS or len(p.skus) > MAX_TARGETS:
        out.append(f"at most {MAX_TARGETS} categories and {MAX_TARGETS} SKUs")
    return out


class Item(NamedTuple):
    """A cart line as a promotion sees it."""

    sku: str
    category_id: int
    total_minor: int


class Outcome(NamedTuple):
    discount_minor: int
    refusal: str | None  # None: applies; else why not (a problem type slug)
    detail: str = ""


def applies_to(p: Promotion, item: Item) -> bool:
    if not p.category_ids and not p.skus:
        return True
    return item.sku in p.skus or item.category_id in p.category_ids


def discount(p: Promotion, items: Sequence[Item], currency: str | None, now_ms: int) -> Outcome:
    """The discount ``p`` gives these lines now, or why it does not apply."""
    if not p.active or not p.starts_at_ms <= now_ms < p.ends_at_ms:
        return Outcome(0, "promo-unavailable", "the code is not valid now")
    eligible = sum(i.total_minor for i in items if applies_to(p, i))
    if eligible <= 0:
        return Outcome(0, "promo-not-applicable", "no line of the cart qualifies")
    if eligible < p.min_spend_minor:
        return Outcome(
            0, "promo-min-spend", f"spend {p.min_spend_minor} on qualifying lines, not {eligible}"
        )
    if p.kind == PERCENT:
        # capped too: a definition is checked when created, the discount must hold anyway
        return Outcome(min(eligible, eligible * p.value // 100), None)
    if p.currency != currency:
        return Outcome(0, "promo-not-applicable", f"the discount is in {p.currency}")
    return Outcome(min(p.value, eligible), None)


def redis_value(p: Promotion) -> str:
    """The definition as the checkout script checks it (adapters/reservations.py)."""
    return (
        f"{1 if p.active else 0}|{p.starts_at_ms}|{p.ends_at_ms}|{p.usage_limit}|{p.per_user_limit}"
    )
