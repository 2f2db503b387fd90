"""Promotion and cart pricing rules, pure: a discount is never negative and never above the
subtotal (so a total is never negative), for any promotion and cart (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nexuscart.domain import cart as cart_rules
from nexuscart.domain import promotions as rules
from nexuscart.domain.promotions import Item, Promotion

SKUS = ["A-1", "B-2", "C-3"]

promotions = st.builds(
    Promotion,
    code=st.just("CODE1"),
    kind=st.sampled_from([rules.PERCENT, rules.FIXED]),
    value=st.integers(1, 10**6),
    currency=st.sampled_from(["EUR", "USD"]),
    min_spend_minor=st.integers(0, 10**6),
    starts_at_ms=st.integers(0, 100),
    ends_at_ms=st.integers(101, 200),
    usage_limit=st.integers(0, 10),
    per_user_limit=st.integers(0, 10),
    category_ids=st.lists(st.integers(1, 4), max_size=2).map(tuple),
    skus=st.lists(st.sampled_from(SKUS), max_size=2).map(tuple),
    active=st.booleans(),
)
items = st.lists(
    st.builds(Item, st.sampled_from(SKUS), st.integers(1, 4), st.integers(0, 10**9)),
    max_size=5,
)


@given(p=promotions, cart=items, currency=st.sampled_from(["EUR", "USD"]), now=st.integers(0, 300))
def test_a_discount_is_never_negative_nor_above_the_subtotal(
    p: Promotion, cart: list[Item], currency: str, now: int
) -> None:
    subtotal = sum(i.total_minor for i in cart)
    out = rules.discount(p, cart, currency, now)
    assert 0 <= out.discount_minor <= subtotal
    assert subtotal - out.discount_minor >= 0
    if out.refusal is not None:
        assert out.discount_minor == 0
    if not p.active or not p.starts_at_ms <= now < p.ends_at_ms:
        assert out.refusal == "promo-unavailable"


def test_a_percentage_rounds_down_on_qualifying_lines_only() -> None:
    p = Promotion("TEN", rules.PERCENT, 10, None, 0, 0, 10, 0, 0, skus=("A-1",))
    out = rules.discount(p, [Item("A-1", 1, 999), Item("B-2", 1, 5_000)], "EUR", 5)
    assert out == (99, None, "")


def test_a_fixed_discount_is_capped_and_needs_its_currency_and_min_spend() -> None:
    p = Promotion("FIVE", rules.FIXED, 500, "EUR", 1_000, 0, 10, 0, 0, category_ids=(3,))
    assert rules.discount(p, [Item("A-1", 3, 1_200)], "EUR", 1).discount_minor == 500
    assert rules.discount(p, [Item("A-1", 3, 900)], "EUR", 1).refusal == "promo-min-spend"
    assert rules.discount(p, [Item("A-1", 2, 5_000)], "EUR", 1).refusal == "promo-not-applicable"
    assert rules.discount(p, [Item("A-1", 3, 5_000)], "USD", 1).refusal == "promo-not-applicable"
    cap = Promotion("BIG", rules.FIXED, 10**6, "EUR", 0, 0, 10, 0, 0)
    assert rules.discount(cap, [Item("A-1", 3, 700)], "EUR", 1).discount_minor == 700


def test_definitions_break_every_rule_they_break() -> None:
    bad = Promotion("x", "other", 0, None, -1, 5, 5, -1, 0, category_ids=tuple(range(101)))
    assert len(rules.problems(bad)) == 6
    assert rules.problems(Promotion("OK-1", rules.PERCENT, 100, None, 0, 0, 1, 0, 0)) == []


@given(
    seen=st.integers(0, 10**6),
    now=st.integers(0, 10**6),
    qty=st.integers(1, cart_rules.MAX_QUANTITY),
    expected=st.none() | st.integers(0, 10**8),
)
def test_a_checkout_never_charges_a_price_the_shopper_has_not_seen(
    seen: int, now: int, qty: int, expected: int | None
) -> None:
    line = cart_rules.StoredLine("A-1", 1, qty, seen, "EUR")
    offer = cart_rules.Offer(1, 1, now, "EUR", 5)
    priced = cart_rules.price([line], {"A-1": offer}, {"A-1": 10})
    total = priced.subtotal_minor
    refusal = cart_rules.charge_refusal(priced, total, expected)
    if refusal is None:
        # allowed only at the price seen, or at the very total the shopper confirmed
        assert now == seen or expected == total
    else:
        assert refusal == "price-changed"
