"""GET /search on a real edge (two Granian workers, each with its own index built from the
catalog in PostgreSQL at start): results, facets, typo tolerance, highlighting, paging, and
400 problem+json for bad input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from devtools import catalog_gen
from nexuscart import config
from nexuscart.adapters import postgres
from nexuscart.domain import search as rules
from tests.conftest import EDGE_TEST_ENV, ROOT, EdgeServer

PRODUCTS = 400  # the generator's first 400 products (deterministic)


@pytest.fixture(scope="module")
def search_edge(settings: config.Settings, migrated: None) -> Iterator[EdgeServer]:
    # A database of its own holding exactly the generated catalog (the session's database
    # has whatever other tests created), then an edge of its own on it: its workers index
    # the catalog at start. Kafka is shared, but nothing writes while these tests run.
    dsn = asyncio.run(fresh_database(settings.postgres.dsn, "nexuscart_search_http"))
    asyncio.run(postgres.migrate_dsn(dsn))
    asyncio.run(catalog_gen.load(dsn, settings.redis.url, PRODUCTS))
    server = EdgeServer("edge.app:app", {**EDGE_TEST_ENV, "PG_DSN": dsn}, workers=2, cwd=ROOT)
    try:
        ready_within(server, 30)
        yield server
    finally:
        server.stop()


async def fresh_database(dsn: str, name: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def ready_within(server: EdgeServer, seconds: float) -> None:
    # both workers must answer: the index is per worker
    deadline = time.monotonic() + seconds
    ok = 0
    while ok < 20:
        r = httpx.get(f"{server.url}/search", params={"q": "a"}, timeout=5)
        ok = ok + 1 if r.status_code == 200 else 0
        if time.monotonic() > deadline:
            raise AssertionError(f"/search not ready: {r.status_code} {r.text}")
        if r.status_code != 200:
            time.sleep(0.2)


def search(edge: EdgeServer, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"{edge.url}/search", params=params, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def expected_active() -> list[catalog_gen.Product]:
    return [p for p in catalog_gen.products(PRODUCTS) if p.status == "active"]


def test_search_finds_active_products_by_title_words(search_edge: EdgeServer) -> None:
    target = expected_active()[0]
    word = max(target.title.split(), key=len).lower()
    body = search(search_edge, q=word, limit=50)
    assert body["total"] >= 1
    assert all(word in h["title"].lower() or word in h["brand"].lower() for h in body["items"])
    drafts = {p.product_id for p in catalog_gen.products(PRODUCTS) if p.status != "active"}
    everything = search(search_edge, limit=50)
    assert everything["total"] == len(expected_active())
    assert not drafts & {h["product_id"] for h in everything["items"]}


def test_a_typo_finds_the_word_and_the_answer_says_so(search_edge: EdgeServer) -> None:
    target = next(p for p in expected_active() if any(len(w) >= 7 for w in p.title.split()))
    word = next(w for w in target.title.split() if len(w) >= 7 and w.isalpha())
    typo = word[0] + word[2] + word[1] + word[3:]
    body = search(search_edge, q=typo.lower(), limit=50)
    assert target.product_id in {h["product_id"] for h in body["items"]}
    assert body["corrected"] == [word.lower()]
    hit = next(h for h in body["items"] if h["product_id"] == target.product_id)
    assert f"<b>{word}</b>" in hit["title_html"]


def test_facets_count_the_whole_match_set(search_edge: EdgeServer) -> None:
    body = search(search_edge, limit=1)
    active = expected_active()
    brands = {b["value"]: b["count"] for b in body["facets"]["brand"]}
    for brand, count in list(brands.items())[:5]:
        assert count == sum(1 for p in active if p.brand == brand)
    assert sum(b["count"] for b in body["facets"]["price"]) == len(active)


def test_filters_and_sorts(search_edge: EdgeServer) -> None:
    body = search(search_edge, price_min=1000, price_max=5000, sort="price_asc", limit=50)
    prices = [h["price_min"] for h in body["items"]]
    assert prices == sorted(prices)
    assert all(1000 <= p <= 5000 for p in prices)
    dept = catalog_gen.categories()[0].category_id  # a department: the whole subtree
    under = search(search_edge, category=dept, limit=50)
    assert under["total"] > 0
    brand = expected_active()[0].brand
    assert all(h["brand"] == brand for h in search(search_edge, brand=brand)["items"])


def test_cursor_pages_through_every_result_once(search_edge: EdgeServer) -> None:
    seen: list[int] = []
    params: dict[str, Any] = {"sort": "newest", "limit": 50}
    while True:
        body = search(search_edge, **params)
        seen += [h["product_id"] for h in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert len(seen) == len(set(seen)) == len(expected_active())


@pytest.mark.parametrize(
    "params",
    [
        {"q": "x" * (rules.Q_MAX_CHARS + 1)},
        {"price_min": "-5"},
        {"price_min": "9", "price_max": "1"},
        {"sort": "random"},
        {"limit": "1000"},
        {"cursor": "garbage"},
        {"category": "abc"},
        {"attr.Colour!": "red"},
        {"nope": "1"},
        {"brand": ["b"] * (rules.MAX_FILTERS + 1)},
    ],
)
def test_bad_input_is_400_problem_json(search_edge: EdgeServer, params: dict[str, Any]) -> None:
    r = httpx.get(f"{search_edge.url}/search", params=params, timeout=5)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("bad-query")


def test_a_cursor_from_another_query_is_refused(search_edge: EdgeServer) -> None:
    cursor = search(search_edge, sort="newest", limit=1)["next_cursor"]
    r = httpx.get(f"{search_edge.url}/search", params={"cursor": cursor}, timeout=5)
    assert r.status_code == 400
