"""Catalog rules (domain/catalog.py): pure, no stack."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nexuscart.domain import catalog as rules


def _variant_errors(**over: object) -> list[str]:
    args: dict[str, object] = dict(
        sku="ABC-1", price_minor=100, currency="USD", attributes={}, low_stock_threshold=5
    )
    args.update(over)
    errors: list[str] = []
    rules.check_variant(errors, **args)  # type: ignore[arg-type]
    return errors


def test_variant_limits() -> None:
    assert _variant_errors() == []
    assert _variant_errors(price_minor=-1)
    assert _variant_errors(price_minor=rules.PRICE_MAX + 1)
    assert _variant_errors(currency="usd")
    assert _variant_errors(currency="US")
    assert _variant_errors(sku="has space")
    assert _variant_errors(sku="x" * 65)
    assert _variant_errors(low_stock_threshold=-1)
    assert _variant_errors(attributes={"Bad-Name": "v"})
    assert _variant_errors(attributes={"ok": ""})


def test_product_limits_name_every_broken_rule() -> None:
    errors: list[str] = []
    rules.check_product(
        errors,
        title="x" * (rules.TITLE_MAX + 1),
        description="",
        brand="b" * (rules.BRAND_MAX + 1),
        attributes={f"a{i}": "v" for i in range(rules.ATTRIBUTES_MAX + 1)},
        images=["javascript:alert(1)"] + ["https://i.example/x.jpg"] * rules.IMAGES_MAX,
        status="gone",
    )
    joined = " ".join(errors)
    for field in ("title", "brand", "attributes", "images:", "images[0]", "status"):
        assert field in joined, field


def test_archived_is_final() -> None:
    rules.check_transition("draft", "active")
    rules.check_transition("active", "draft")
    rules.check_transition("active", "archived")
    for target in ("draft", "active"):
        try:
            rules.check_transition("archived", target)
        except rules.TransitionRefused:
            continue
        raise AssertionError(target)


def test_ownership_and_visibility() -> None:
    assert rules.may_write(7, False, 7)
    assert not rules.may_write(7, False, 8)
    assert rules.may_write(7, True, 8)
    assert rules.visible_to("active", None, False, 8)
    assert not rules.visible_to("draft", None, False, 8)
    assert not rules.visible_to("draft", 7, False, 8)
    assert rules.visible_to("archived", 8, False, 8)


@given(seller=st.integers(1, 2**62), key=st.text(min_size=1, max_size=200))
def test_created_ids_are_stable_and_in_their_range(seller: int, key: str) -> None:
    pid = rules.created_product_id(seller, key)
    assert pid == rules.created_product_id(seller, key)
    assert rules.CREATED_ID_MIN <= pid < 2**53


@given(before=st.integers(0, 100), after=st.integers(0, 100), threshold=st.integers(0, 50))
def test_stock_low_fires_only_on_a_downward_crossing(
    before: int, after: int, threshold: int
) -> None:
    crossed = rules.crossed_low(before, after, threshold)
    assert crossed == (
        rules.stock_status(before, threshold) == "in_stock"
        and rules.stock_status(after, threshold) != "in_stock"
    )


@given(version=st.integers(0, 10**8), tag=st.text(alphabet="0123456789abcdef", max_size=8))
def test_if_match_reads_the_version_of_any_etag_we_send(version: int, tag: str) -> None:
    assert rules.if_match_version(rules.etag(version, tag)) == version
    assert rules.if_match_version("W/" + rules.etag(version, tag)) == version


def test_if_match_refuses_what_names_no_version() -> None:
    for bad in ("*", "", '""', "7", '"x"', '"1234567890"', '"-1"', '"٣"'):
        assert rules.if_match_version(bad) is None, bad


def test_subtree() -> None:
    children = {1: [2, 3], 2: [4], 4: [5]}
    assert sorted(rules.subtree(children, 1)) == [1, 2, 3, 4, 5]
    assert rules.subtree(children, 3) == [3]


@given(text=st.text(min_size=1, max_size=50))
def test_texts_postgresql_cannot_store_are_refused(text: str) -> None:
    nul = text + "\x00"
    title: list[str] = []
    rules.check_text(title, "title", nul, rules.TITLE_MAX, required=True)
    attrs: list[str] = []
    rules.check_attributes(attrs, "attributes", {"colour": nul})
    images: list[str] = []
    rules.check_images(images, ["https://i.example/" + nul])
    assert title
    assert attrs
    assert images
