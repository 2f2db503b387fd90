"""Cart rules, pure: which of a cart's products seed its recommendations (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nexuscart.domain.cart import StoredLine, main_products

lines = st.lists(
    st.builds(
        StoredLine,
        sku=st.sampled_from(["A-1", "A-2", "B-1", "C-1", "D-1"]),
        product_id=st.integers(1, 6),
        quantity=st.integers(1, 99),
        price_seen=st.integers(0, 10**6),
        currency=st.just("EUR"),
    ),
    max_size=8,
)


@given(lines, st.integers(0, 8))
def test_main_products_are_distinct_and_the_largest_lines_by_value_first(
    cart: list[StoredLine], n: int
) -> None:
    got = main_products(cart, n)
    value: dict[int, int] = {}
    for ln in cart:
        value[ln.product_id] = value.get(ln.product_id, 0) + ln.quantity * ln.price_seen
    assert len(got) == len(set(got)) == min(n, len(value))
    assert [value[p] for p in got] == sorted((value[p] for p in got), reverse=True)
    left_out = set(value) - set(got)
    assert all(value[p] >= value[q] for p in got for q in left_out)
