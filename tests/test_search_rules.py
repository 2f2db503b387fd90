"""Search rules and the engine on small catalogs (tantivy in memory is the real engine)."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexuscart import events
from nexuscart.app.search import NotReady, PoisonEvent, Search
from nexuscart.domain import search as rules
from nexuscart.domain.search import Invalid, SearchQuery, parse

# --- parsing and limits ---------------------------------------------------------------------


def test_parse_reads_every_parameter() -> None:
    q = parse(
        [
            ("q", "  red   shoes "),
            ("category", "7"),
            ("price_min", "100"),
            ("price_max", "900"),
            ("brand", "Acme"),
            ("brand", "Zed"),
            ("attr.color", "red"),
            ("attr.color", "blue"),
            ("attr.size", "m"),
            ("in_stock", "true"),
            ("sort", "price_asc"),
            ("limit", "5"),
        ]
    )
    assert q.q == "red shoes"
    assert q.category_id == 7
    assert (q.price_min, q.price_max) == (100, 900)
    assert q.brands == ("Acme", "Zed")
    assert q.attrs == (("color", ("red", "blue")), ("size", ("m",)))
    assert q.in_stock is True
    assert q.sort == "price_asc"
    assert q.limit == 5


@pytest.mark.parametrize(
    "pairs",
    [
        [("q", "x" * (rules.Q_MAX_CHARS + 1))],
        [("q", " ".join(["w"] * (rules.Q_MAX_TERMS + 1)))],
        [("q", "a\x00b")],
        [("price_min", "-1")],
        [("price_min", "10"), ("price_max", "5")],
        [("price_max", str(rules.PRICE_MAX + 1))],
        [("category", "abc")],
        [("category", "1"), ("category", "2")],
        [("sort", "cheapest")],
        [("limit", "0")],
        [("limit", str(rules.LIMIT_MAX + 1))],
        [("in_stock", "yes")],
        [("attr.Bad-Name", "x")],
        [("brand", "")],
        [("brand", "b" * (rules.FILTER_VALUE_MAX + 1))],
        [("brand", str(i)) for i in range(rules.MAX_FILTERS + 1)],
        [("colour", "red")],
        [("cursor", "not-a-cursor!")],
        [("cursor", "")],
    ],
)
def test_parse_refuses_bad_input(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(Invalid):
        parse(pairs)


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=8))
@settings(max_examples=300)
def test_parse_answers_any_input_with_a_query_or_invalid(pairs: list[tuple[str, str]]) -> None:
    with contextlib.suppress(Invalid):
        parse(pairs)


def test_cursor_is_bound_to_its_query() -> None:
    q = parse([("q", "shoe")])
    c = rules.encode_cursor(q, 40)
    assert parse([("q", "shoe"), ("cursor", c)]).offset == 40
    with pytest.raises(Invalid, match="another query"):
        parse([("q", "shirt"), ("cursor", c)])
    deep = rules.encode_cursor(q, rules.MAX_OFFSET + 1)
    with pytest.raises(Invalid):
        parse([("q", "shoe"), ("cursor", deep)])


def test_ndcg_is_one_for_the_ideal_order_and_lower_otherwise() -> None:
    judged = {1: 3, 2: 2, 3: 1}
    assert rules.ndcg_at(10, [1, 2, 3], judged) == pytest.approx(1.0)
    assert rules.ndcg_at(10, [3, 2, 1], judged) < 1.0
    assert rules.ndcg_at(10, [9, 8], judged) == 0.0


# --- the engine on a small catalog ----------------------------------------------------------

PARENTS = {1: None, 2: 1, 3: 2, 4: 1, 5: None}


def product(
    pid: int,
    title: str,
    *,
    brand: str = "Acme",
    category: int = 3,
    price: int = 1000,
    stock: int = 5,
    status: str = "active",
    version: int = 1,
    color: str = "red",
) -> events.ProductData:
    return events.ProductData(
        product_id=pid,
        seller_id=1,
        category_id=category,
        title=title,
        description=f"{title}, a fine thing",
        brand=brand,
        attributes={"material": "steel"},
        images=[],
        status=status,
        version=version,
        popularity=1.0,
        variants=[
            events.VariantData(f"SKU-{pid}-A", price, "EUR", {"color": color}, 2, stock),
            events.VariantData(f"SKU-{pid}-B", price + 500, "EUR", {"color": "blue"}, 2, 0),
        ],
        created_at_ms=pid,
        updated_at_ms=pid,
    )


def env(data: events.CatalogEvent, pid: int) -> events.CatalogEnvelope:
    return events.CatalogEnvelope(
        id=uuid.uuid4(),
        type=type(data).__name__,
        version=1,
        occurred_at=datetime.now(UTC),
        key=str(pid),
        data=data,
    )


CATALOG = [
    product(1, "Apple iPhone 15 Pro", brand="Apple", category=3, price=99_900),
    product(2, "Apple iPhone 14", brand="Apple", category=3, price=69_900, stock=0),
    product(3, "Samsung Galaxy S24 phone", brand="Samsung", category=3, price=79_900),
    product(4, "Trail running shoes", brand="Nord", category=4, price=8_900, color="green"),
    product(5, "Leather office chair", brand="Zed", category=5, price=24_900),
    product(6, "Draft iPhone case", status="draft"),
]


async def loaded() -> Search:
    s = Search()
    s.parents = dict(PARENTS)
    await s.apply([env(events.ProductCreated(p), p.product_id) for p in CATALOG])
    s.ready = True
    return s


def ids(s: Search, **kw: object) -> list[int]:
    page = s.search(SearchQuery(**kw))  # type: ignore[arg-type]
    return [h.product_id for h in page.items]


async def test_typo_tolerance_finds_iphone() -> None:
    s = await loaded()
    page = s.search(parse([("q", "iphnoe")]))
    assert {h.product_id for h in page.items} == {1, 2}
    assert page.corrected == ["iphone"]
    assert "<b>iPhone</b>" in page.items[0].title_html


async def test_prefix_of_the_last_word_matches() -> None:
    s = await loaded()
    assert ids(s, q="runn") == [4]


async def test_only_active_products_are_found() -> None:
    s = await loaded()
    assert 6 not in ids(s, q="iphone")
    assert 6 not in ids(s, limit=50)


async def test_category_filter_takes_the_subtree() -> None:
    s = await loaded()
    assert sorted(ids(s, category_id=1)) == [1, 2, 3, 4]  # 3 and 4 are under 1
    assert sorted(ids(s, category_id=2)) == [1, 2, 3]
    assert ids(s, category_id=5) == [5]


async def test_filters_price_brand_attribute_stock() -> None:
    s = await loaded()
    assert sorted(ids(s, price_min=70_000, price_max=100_000)) == [1, 3]
    assert sorted(ids(s, brands=("Apple",))) == [1, 2]
    assert ids(s, attrs=(("color", ("green",)),)) == [4]
    assert 2 not in ids(s, q="iphone", in_stock=True)
    assert ids(s, q="iphone", in_stock=False) == [2]


async def test_sorts() -> None:
    s = await loaded()
    assert ids(s, sort="price_asc") == [4, 5, 2, 3, 1]
    assert ids(s, sort="price_desc") == [1, 3, 2, 5, 4]
    assert ids(s, sort="newest") == [5, 4, 3, 2, 1]


async def test_facet_counts() -> None:
    s = await loaded()
    f = s.search(SearchQuery(category_id=2)).facets
    assert {(b.value, b.count) for b in f.brand} == {("Apple", 2), ("Samsung", 1)}
    assert {(b.value, b.count) for b in f.category} == {("3", 3)}
    assert {(b.value, b.count) for b in f.attributes["color"]} == {("red", 3), ("blue", 3)}
    bands = {b.value: b.count for b in f.price}
    assert bands["50000-100000"] == 3
    assert sum(bands.values()) == 3


async def test_cursor_pages_cover_the_results_once() -> None:
    s = await loaded()
    seen: list[int] = []
    q = parse([("sort", "price_asc"), ("limit", "2")])
    while True:
        page = s.search(q)
        seen += [h.product_id for h in page.items]
        if page.next_cursor is None:
            break
        q = parse([("sort", "price_asc"), ("limit", "2"), ("cursor", page.next_cursor)])
    assert seen == [4, 5, 2, 3, 1]


async def test_not_ready_until_built() -> None:
    with pytest.raises(NotReady):
        Search().search(SearchQuery(q="x"))


# --- following events -----------------------------------------------------------------------


async def test_update_archive_and_stock_events_change_the_index() -> None:
    s = await loaded()
    renamed = msgspec.structs.replace(
        CATALOG[3], title="Trail hiking boots", description="", version=2
    )
    await s.apply([env(events.ProductUpdated(renamed), 4)])
    assert ids(s, q="boots") == [4]
    assert ids(s, q="running") == []
    archived = msgspec.structs.replace(CATALOG[4], status="archived", version=2)
    await s.apply([env(events.ProductArchived(archived), 5)])
    assert ids(s, q="chair") == []
    restock = events.StockAdjusted(2, 1, "SKU-2-A", uuid.uuid4(), 3, "restock", 3, 1, 9)
    await s.apply([env(restock, 2)])
    assert 2 in ids(s, q="iphone", in_stock=True)


async def test_old_versions_and_repeated_events_change_nothing() -> None:
    s = await loaded()
    new = env(events.ProductUpdated(msgspec.structs.replace(CATALOG[0], title="X", version=3)), 1)
    await s.apply([new, new])
    old = env(events.ProductUpdated(msgspec.structs.replace(CATALOG[0], title="Y", version=2)), 1)
    await s.apply([old])
    assert s.docs[1].title == "X"
    stale = events.StockAdjusted(1, 1, "SKU-1-A", uuid.uuid4(), -5, "correction", 0, 0, 9)
    await s.apply([env(stale, 1)])
    assert s.docs[1].in_stock


async def test_an_event_whose_key_is_not_its_product_is_poison() -> None:
    s = await loaded()
    with pytest.raises(PoisonEvent):
        s.plan([env(events.ProductUpdated(CATALOG[0]), 99)])


def test_answers_are_cached_until_the_index_changes() -> None:
    s = Search()
    s.remember("q=a", b"1")
    assert s.cached("q=a") == b"1"
    s.index.apply([])
    assert s.cached("q=a") is None


def test_highlight_marks_searched_words_and_the_prefix_and_escapes() -> None:
    assert rules.highlight("Apple iPhone 15", ["iphone"]) == "Apple <b>iPhone</b> 15"
    assert rules.highlight("Bose Headphones", ["bose", "head"], "head") == (
        "<b>Bose</b> <b>Headphones</b>"
    )
    assert rules.highlight("Café <Crème>", ["cafe"]) == "<b>Café</b> &lt;Crème&gt;"
    assert rules.highlight("A&B", []) == "A&amp;B"


async def test_a_prefix_match_is_highlighted() -> None:
    s = await loaded()
    page = s.search(parse([("q", "runn")]))
    assert page.items[0].title_html == "Trail <b>running</b> shoes"
