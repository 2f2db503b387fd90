"""The catalog over HTTP: a real edge (Granian, 2 workers) on the real stack.

Sellers write their own products only (another seller's are 404, as if absent); writes are
idempotent and conditional (If-Match: 412 stale, 428 missing) and concurrent stale writes
never lose one; pages are cached per worker and converge after writes; bad input is 4xx;
stock adjustments are audited, idempotent, and raise StockLow once per crossing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from devtools import catalog_gen
from nexuscart import auth, config, events
from nexuscart.adapters.catalog_store import CatalogStore
from tests.conftest import EDGE_TEST_ENV, EdgeServer

ROOT = Path(__file__).resolve().parent.parent
SECRET = config.dev_defaults()["JWT_SECRET"]
_ids = iter(range(50_000_000, 51_000_000))


def token(*roles: str, user_id: int | None = None) -> tuple[int, str]:
    uid = next(_ids) if user_id is None else user_id
    return uid, auth.issue(SECRET, uid, roles=roles)


@pytest.fixture(scope="module")
def edge(stack: Any, migrated: None, settings: config.Settings) -> Iterator[EdgeServer]:
    # the category tree (and a few generated products) must exist before the edge loads it
    asyncio.run(catalog_gen.load(settings.postgres.dsn, settings.redis.url, 30))
    server = EdgeServer("edge.app:app", EDGE_TEST_ENV, workers=2, cwd=ROOT)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def leaf() -> int:
    cats = catalog_gen.categories()
    parents = {c.parent_id for c in cats}
    return next(c.category_id for c in cats if c.category_id not in parents)


def headers(tok: str | None, key: str | None = None, **extra: str) -> dict[str, str]:
    h = {"idempotency-key": key or uuid.uuid4().hex, **extra}
    if tok:
        h["authorization"] = f"Bearer {tok}"
    return h


def product_body(leaf: int, **over: Any) -> dict[str, Any]:
    sku = f"T-{uuid.uuid4().hex[:12]}"
    body: dict[str, Any] = {
        "category_id": leaf,
        "title": "Acme Trail Runner 2",
        "brand": "Acme",
        "description": "A shoe.",
        "attributes": {"material": "mesh"},
        "images": ["https://img.example/1.jpg"],
        "status": "active",
        "variants": [
            {"sku": sku, "price_minor": 12_999, "currency": "USD", "attributes": {"size": "42"}}
        ],
    }
    body.update(over)
    return body


def create(edge: EdgeServer, tok: str, leaf: int, **over: Any) -> dict[str, Any]:
    r = httpx.post(f"{edge.url}/products", json=product_body(leaf, **over), headers=headers(tok))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    assert r.headers["etag"] == f'"{out["version"]}.{r.headers["etag"].split(".")[1]}'
    return out


def etag_of(edge: EdgeServer, pid: int, tok: str | None = None) -> str:
    r = httpx.get(f"{edge.url}/products/{pid}", headers=headers(tok))
    assert r.status_code == 200, r.text
    return r.headers["etag"]


def test_create_is_idempotent_and_a_reused_key_with_another_body_is_422(
    edge: EdgeServer, leaf: int
) -> None:
    _, tok = token("seller")
    body = product_body(leaf)
    key = uuid.uuid4().hex
    first = httpx.post(f"{edge.url}/products", json=body, headers=headers(tok, key))
    assert first.status_code == 201, first.text
    again = httpx.post(f"{edge.url}/products", json=body, headers=headers(tok, key))
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["product_id"] == first.json()["product_id"]
    other = httpx.post(
        f"{edge.url}/products", json={**body, "title": "Other"}, headers=headers(tok, key)
    )
    assert other.status_code == 422
    assert other.json()["type"] == "/problems/idempotency-key-reused"


def test_a_sku_belongs_to_one_product(edge: EdgeServer, leaf: int) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    sku = p["variants"][0]["sku"]
    r = httpx.post(
        f"{edge.url}/products",
        json=product_body(leaf, variants=[{"sku": sku, "price_minor": 1, "currency": "USD"}]),
        headers=headers(tok),
    )
    assert r.status_code == 409
    assert r.json()["type"] == "/problems/sku-taken"


def test_drafts_are_visible_to_their_seller_and_admins_only(edge: EdgeServer, leaf: int) -> None:
    _, owner = token("seller")
    _, other = token("seller")
    _, admin = token("admin")
    _, customer = token("customer")
    p = create(edge, owner, leaf, status="draft")
    url = f"{edge.url}/products/{p['product_id']}"
    assert httpx.get(url).status_code == 404
    assert httpx.get(url, headers=headers(customer)).status_code == 404
    assert httpx.get(url, headers=headers(other)).status_code == 404
    assert httpx.get(url, headers={"authorization": "Bearer nonsense"}).status_code == 404
    mine = httpx.get(url, headers=headers(owner))
    assert mine.status_code == 200
    assert mine.headers["cache-control"] == "private, no-store"
    assert httpx.get(url, headers=headers(admin)).status_code == 200


def _write_calls(pid: int, sku: str) -> list[tuple[str, str, dict[str, Any] | None, bool]]:
    """(method, path, body, needs If-Match) of every catalog write on one product."""
    return [
        ("PATCH", f"/products/{pid}", {"title": "Renamed by someone"}, True),
        (
            "POST",
            f"/products/{pid}/variants",
            {"sku": f"V-{uuid.uuid4().hex[:10]}", "price_minor": 5, "currency": "EUR"},
            True,
        ),
        ("PATCH", f"/products/{pid}/variants/{sku}", {"price_minor": 777}, True),
        ("POST", f"/products/{pid}/variants/{sku}/stock", {"delta": 5, "reason": "restock"}, False),
        ("POST", f"/products/{pid}/archive", None, True),
    ]


def test_seller_a_cannot_touch_seller_b_products(edge: EdgeServer, leaf: int) -> None:
    """Every write route x (another seller, a customer, anonymous, the owner, an admin):
    another seller gets 404 and changes nothing; a customer 403; anonymous 401; the owner
    and an admin succeed."""
    _, owner = token("seller")
    _, other = token("seller")
    _, admin = token("admin")
    _, customer = token("customer")
    for who, tok, expected in (
        ("other seller", other, 404),
        ("customer", customer, 403),
        ("anonymous", None, 401),
        ("owner", owner, 200),
        ("admin", admin, 200),
    ):
        p = create(edge, owner, leaf)
        pid, sku = p["product_id"], p["variants"][0]["sku"]
        for method, path, body, conditional in _write_calls(pid, sku):
            extra = {"if-match": etag_of(edge, pid, owner)} if conditional else {}
            r = httpx.request(method, edge.url + path, json=body, headers=headers(tok, **extra))
            assert r.status_code == expected, f"{who} {method} {path}: {r.status_code} {r.text}"
        after = httpx.get(f"{edge.url}/products/{pid}", headers=headers(owner)).json()
        if expected != 200:
            assert after["version"] == p["version"], who
            assert after["title"] == p["title"], who
        else:
            assert after["status"] == "archived", who


def test_if_match_missing_is_428_and_stale_is_412(edge: EdgeServer, leaf: int) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    url = f"{edge.url}/products/{p['product_id']}"
    r = httpx.patch(url, json={"title": "New"}, headers=headers(tok))
    assert r.status_code == 428
    assert r.json()["type"] == "/problems/precondition-required"
    tag = etag_of(edge, p["product_id"])
    key = uuid.uuid4().hex
    ok = httpx.patch(url, json={"title": "New"}, headers=headers(tok, key, **{"if-match": tag}))
    assert ok.status_code == 200
    # the retry of that write (lost answer) is recognised, not refused as stale
    again = httpx.patch(url, json={"title": "New"}, headers=headers(tok, key, **{"if-match": tag}))
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    stale = httpx.patch(url, json={"title": "Newer"}, headers=headers(tok, **{"if-match": tag}))
    assert stale.status_code == 412
    assert stale.json()["type"] == "/problems/precondition-failed"


async def _read_modify_write(
    http: httpx.AsyncClient, url: str, tok: str, name: str, stale_tag: str
) -> int:
    """Add attribute ``name`` with If-Match, starting from a stale ETag; re-read and retry
    after each 412. Returns the number of 412s seen."""
    tag, refused = stale_tag, 0
    while True:
        current = (await http.get(url, headers=headers(tok))).json()
        attrs = {**current["attributes"], name: "set"}
        r = await http.patch(
            url, json={"attributes": attrs}, headers=headers(tok, **{"if-match": tag})
        )
        if r.status_code == 200:
            return refused
        assert r.status_code == 412, r.text
        refused += 1
        page = await http.get(url, headers=headers(tok))
        tag = page.headers["etag"]


@hsettings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writers=st.integers(min_value=2, max_value=6))
def test_concurrent_writes_with_stale_if_match_never_lose_a_write(
    edge: EdgeServer, leaf: int, writers: int
) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    url = f"{edge.url}/products/{p['product_id']}"
    first_tag = etag_of(edge, p["product_id"])

    async def main() -> list[int]:
        async with httpx.AsyncClient(timeout=10) as http:
            return await asyncio.gather(
                *(_read_modify_write(http, url, tok, f"w{i}", first_tag) for i in range(writers))
            )

    refusals = asyncio.run(main())
    final = httpx.get(url, headers=headers(tok)).json()
    assert {f"w{i}" for i in range(writers)} <= set(final["attributes"])  # none lost
    assert final["version"] == p["version"] + writers  # one version per write
    assert sum(refusals) >= writers - 1  # the same stale tag let at most one through


def test_pages_converge_on_every_worker_after_a_write(edge: EdgeServer, leaf: int) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    url = f"{edge.url}/products/{p['product_id']}"
    for _ in range(20):  # both workers cache the page (fresh connections spread them)
        assert httpx.get(url, headers={"connection": "close"}).json()["title"] == p["title"]
    for n in range(3):
        tag = etag_of(edge, p["product_id"])
        title = f"Renamed {n}"
        r = httpx.patch(url, json={"title": title}, headers=headers(tok, **{"if-match": tag}))
        assert r.status_code == 200
        # converged: 20 fresh connections in a row see the new title (bounded wait)
        streak, deadline = 0, time.monotonic() + 10
        while streak < 20:
            assert time.monotonic() < deadline, "a worker kept a stale page"
            got = httpx.get(url, headers={"connection": "close"}).json()["title"]
            streak = streak + 1 if got == title else 0


def test_etag_and_304(edge: EdgeServer, leaf: int) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    url = f"{edge.url}/products/{p['product_id']}"
    first = httpx.get(url)
    assert first.headers["cache-control"] == "public, max-age=1"
    not_modified = httpx.get(url, headers={"if-none-match": first.headers["etag"]})
    assert not_modified.status_code == 304
    assert not_modified.headers["etag"] == first.headers["etag"]
    assert not_modified.content == b""


@pytest.mark.parametrize(
    ("change", "status", "kind"),
    [
        ({"category_id": 987_654_321}, 422, "unknown-category"),
        ({"title": "x" * 10_000}, 422, "validation-error"),
        ({"title": "  "}, 422, "validation-error"),
        ({"title": "nul\u0000byte"}, 422, "validation-error"),
        ({"attributes": {"colour": "red\u0000"}}, 422, "validation-error"),
        ({"images": ["ftp://nope"]}, 422, "validation-error"),
        ({"images": [f"https://i.example/{i}.jpg" for i in range(21)]}, 422, "validation-error"),
        ({"attributes": {f"a{i}": "v" for i in range(31)}}, 422, "validation-error"),
        ({"status": "archived"}, 422, "validation-error"),
        ({"status": "weird"}, 422, "validation-error"),
        (
            {"variants": [{"sku": "neg-1", "price_minor": -1, "currency": "USD"}]},
            422,
            "validation-error",
        ),
        (
            {"variants": [{"sku": "cur-1", "price_minor": 1, "currency": "usd"}]},
            422,
            "validation-error",
        ),
        (
            {"variants": [{"sku": "bad sku", "price_minor": 1, "currency": "USD"}]},
            422,
            "validation-error",
        ),
        ({"variants": []}, 422, "validation-error"),
        ({"unknown_field": 1}, 422, "validation-error"),
    ],
)
def test_bad_product_input_is_4xx(
    edge: EdgeServer, leaf: int, change: dict[str, Any], status: int, kind: str
) -> None:
    _, tok = token("seller")
    r = httpx.post(f"{edge.url}/products", json=product_body(leaf, **change), headers=headers(tok))
    assert r.status_code == status, r.text
    assert r.json()["type"] == f"/problems/{kind}"


@pytest.mark.parametrize(
    "query",
    [
        "cursor=abc",
        "cursor=-1",
        "limit=0",
        "limit=101",
        "category_id=987654321",
        "cursor=99999999999999999999",
    ],
)
def test_bad_listing_query_is_400(edge: EdgeServer, query: str) -> None:
    r = httpx.get(f"{edge.url}/products?{query}")
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "/problems/bad-query"


def test_listing_pages_by_cursor_within_a_category_subtree(edge: EdgeServer) -> None:
    cats = catalog_gen.categories()
    department = cats[0].category_id  # the generated products' departments
    under = {department}
    for c in cats:  # ids are in tree order: a child comes after its parent
        if c.parent_id in under:
            under.add(c.category_id)
    seen: list[int] = []
    cursor = None
    for _ in range(100):
        q = f"limit=2&category_id={department}" + (f"&cursor={cursor}" if cursor else "")
        page = httpx.get(f"{edge.url}/products?{q}").json()
        seen += [i["product_id"] for i in page["items"]]
        assert all(i["category_id"] in under for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(seen))
    gen_ids = [
        p.product_id
        for p in catalog_gen.products(30)
        if p.category_id in under and p.status == "active"
    ]
    assert set(gen_ids) <= set(seen)


def test_categories_is_the_tree(edge: EdgeServer) -> None:
    r = httpx.get(f"{edge.url}/categories")
    assert r.status_code == 200
    tree = r.json()
    assert tree["count"] >= 1000
    assert len(tree["categories"]) == 20
    assert tree["categories"][0]["children"][0]["children"]


def test_inventory_answers_a_batch_and_bounds_it(edge: EdgeServer) -> None:
    gen = list(catalog_gen.products(30))
    skus = [v.sku for p in gen for v in p.variants][:50]
    r = httpx.get(f"{edge.url}/inventory", params=[("sku", s) for s in skus])
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["sku"] for i in items] == skus
    assert all(i["status"] in ("in_stock", "low_stock", "out_of_stock") for i in items)
    unknown = httpx.get(f"{edge.url}/inventory?sku=NO-SUCH-SKU-1").json()["items"]
    assert unknown == [{"sku": "NO-SUCH-SKU-1", "available": 0, "status": "unknown"}]
    for q in ["", "sku=", "sku=bad%20sku", "&".join(["sku=A"] * 51), "sku=" + "x" * 65]:
        bad = httpx.get(f"{edge.url}/inventory?{q}")
        assert bad.status_code == 400, q
        assert bad.json()["type"] == "/problems/bad-query"


async def _outbox(settings: config.Settings, pid: int) -> list[events.CatalogEnvelope]:
    conn = await asyncpg.connect(settings.postgres.dsn)
    try:
        rows = await conn.fetch(
            "SELECT payload FROM catalog_outbox WHERE product_id = $1 ORDER BY created_at", pid
        )
    finally:
        await conn.close()
    return [events.decode_catalog(bytes(r["payload"])) for r in rows]


def test_stock_adjustments_are_audited_idempotent_and_raise_stock_low_once_per_crossing(
    edge: EdgeServer, leaf: int, settings: config.Settings
) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    pid, sku = p["product_id"], p["variants"][0]["sku"]  # threshold 5
    url = f"{edge.url}/products/{pid}/variants/{sku}/stock"

    def adjust(delta: int, key: str | None = None, reason: str = "restock") -> httpx.Response:
        return httpx.post(url, json={"delta": delta, "reason": reason}, headers=headers(tok, key))

    key = uuid.uuid4().hex
    assert adjust(20, key).json()["available"] == 20
    replay = adjust(20, key)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["available"] == 20  # applied once
    assert adjust(7, key).status_code == 422  # same key, another adjustment
    assert adjust(-16, reason="correction").json()["stock_status"] == "low_stock"  # 4: crossing
    assert adjust(-1, reason="damage").json()["available"] == 3  # still low: no new StockLow
    assert adjust(-4, reason="damage").status_code == 409  # below zero
    assert adjust(10).json()["available"] == 13  # back above
    assert adjust(-13, reason="correction").json()["stock_status"] == "out_of_stock"  # crossing
    inv = httpx.get(f"{edge.url}/inventory?sku={sku}").json()["items"]
    assert inv == [{"sku": sku, "available": 0, "status": "out_of_stock"}]
    page = httpx.get(f"{edge.url}/products/{pid}").json()
    assert page["variants"][0]["stock_status"] == "out_of_stock"
    kinds = [e.type for e in asyncio.run(_outbox(settings, pid))]
    assert kinds.count("StockAdjusted") == 5
    assert kinds.count("StockLow") == 2
    assert kinds[0] == "ProductCreated"
    metrics = httpx.get(f"{edge.url}/metrics").text
    assert "catalog_stock_low_total" in metrics


def test_archive_is_final_and_hides_the_product(edge: EdgeServer, leaf: int) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    url = f"{edge.url}/products/{p['product_id']}"
    tag = etag_of(edge, p["product_id"])
    r = httpx.post(f"{url}/archive", headers=headers(tok, **{"if-match": tag}))
    assert r.status_code == 200
    assert r.json()["status"] == "archived"
    assert httpx.get(url).status_code == 404
    back = httpx.patch(
        url, json={"status": "active"}, headers=headers(tok, **{"if-match": r.headers["etag"]})
    )
    assert back.status_code == 409
    assert back.json()["type"] == "/problems/invalid-transition"


def test_a_stock_check_follows_every_change_of_a_level_it_has_answered_before(
    edge: EdgeServer, leaf: int
) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    pid, sku = p["product_id"], p["variants"][0]["sku"]  # threshold 5
    expected = 0
    with httpx.Client(base_url=edge.url, timeout=10) as c:

        def seen() -> tuple[int, str]:
            (item,) = c.get(f"/inventory?sku={sku}&sku=NO-SUCH-SKU-2").json()["items"][:1]
            return item["available"], item["status"]

        for delta, status in ((9, "in_stock"), (-6, "low_stock"), (4, "in_stock"),
                              (-7, "out_of_stock")):  # fmt: skip
            for _ in range(6):  # both workers answer it (and remember the item)
                assert seen()[0] == expected
            body = {"delta": delta, "reason": "correction"}
            r = c.post(f"/products/{pid}/variants/{sku}/stock", json=body, headers=headers(tok))
            assert r.status_code == 200, r.text
            expected += delta
            deadline = time.monotonic() + 2  # each worker's copy goes with Redis' push
            while seen()[0] != expected and time.monotonic() < deadline:
                time.sleep(0.01)
            for _ in range(6):
                assert seen() == (expected, status)


def test_stock_missing_from_redis_is_read_from_postgres_and_written_back(
    edge: EdgeServer, leaf: int, settings: config.Settings
) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    pid, sku = p["product_id"], p["variants"][0]["sku"]
    r = httpx.post(
        f"{edge.url}/products/{pid}/variants/{sku}/stock",
        json={"delta": 9, "reason": "restock"},
        headers=headers(tok),
    )
    assert r.status_code == 200

    async def forget_then_level() -> Any:
        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            store = CatalogStore(client)
            await store.forget([sku])  # as after a Redis flush
            async with httpx.AsyncClient() as http:
                got = (await http.get(f"{edge.url}/inventory?sku={sku}")).json()["items"]
            (level,) = await store.levels([sku])
            return got, level
        finally:
            await client.aclose()

    items, level = asyncio.run(forget_then_level())
    assert items == [{"sku": sku, "available": 9, "status": "in_stock"}]
    assert level is not None
    assert level.stock == 9


@pytest.mark.parametrize("seller_id", [0, -1, 2**63, 10**30])
def test_an_admin_naming_an_impossible_seller_is_422(
    edge: EdgeServer, leaf: int, seller_id: int
) -> None:
    _, admin = token("admin")
    r = httpx.post(
        f"{edge.url}/products",
        json=product_body(leaf, seller_id=seller_id),
        headers=headers(admin),
    )
    assert r.status_code in (400, 422), r.text


def test_an_admin_creates_for_a_seller_who_then_owns_it(edge: EdgeServer, leaf: int) -> None:
    seller_id, seller = token("seller")
    _, admin = token("admin")
    _, other = token("seller")
    p = httpx.post(
        f"{edge.url}/products",
        json=product_body(leaf, seller_id=seller_id),
        headers=headers(admin),
    ).json()
    assert p["seller_id"] == seller_id
    url = f"{edge.url}/products/{p['product_id']}"
    tag = etag_of(edge, p["product_id"])
    assert (
        httpx.patch(
            url, json={"brand": "X"}, headers=headers(other, **{"if-match": tag})
        ).status_code
        == 404
    )
    assert (
        httpx.patch(
            url, json={"brand": "X"}, headers=headers(seller, **{"if-match": tag})
        ).status_code
        == 200
    )
    sneaky = httpx.post(
        f"{edge.url}/products", json=product_body(leaf, seller_id=seller_id), headers=headers(other)
    )
    assert sneaky.status_code == 403  # only admins create for another seller


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("title"), st.text(alphabet="abcdefgh ", min_size=1, max_size=12)),
        st.tuples(st.just("price"), st.integers(0, 10**6)),
        st.tuples(st.just("stock"), st.integers(1, 50)),
        st.tuples(st.just("unstock"), st.integers(1, 50)),
    ),
    min_size=1,
    max_size=6,
)


async def _db_view(settings: config.Settings, pid: int) -> tuple[str, int, int]:
    conn = await asyncpg.connect(settings.postgres.dsn)
    try:
        title = await conn.fetchval("SELECT title FROM products WHERE product_id = $1", pid)
        v = await conn.fetchrow(
            "SELECT price_minor, stock FROM variants WHERE product_id = $1", pid
        )
    finally:
        await conn.close()
    return title, v["price_minor"], v["stock"]


@hsettings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
def test_after_any_sequence_of_writes_every_worker_serves_the_database_state(
    edge: EdgeServer, leaf: int, settings: config.Settings, ops: list[tuple[str, Any]]
) -> None:
    _, tok = token("seller")
    p = create(edge, tok, leaf)
    pid, sku = p["product_id"], p["variants"][0]["sku"]
    url = f"{edge.url}/products/{pid}"
    for _ in range(6):  # cached on both workers before the writes
        httpx.get(url, headers={"connection": "close"})
    for op, value in ops:
        if op == "title":
            body, path = {"title": value.strip() or "x"}, url
        elif op == "price":
            body, path = {"price_minor": value}, f"{url}/variants/{sku}"
        else:
            delta = value if op == "stock" else -value
            r = httpx.post(
                f"{url}/variants/{sku}/stock",
                json={"delta": delta, "reason": "count"},
                headers=headers(tok),
            )
            assert r.status_code in (200, 409), r.text  # 409: not that many in stock
            continue
        r = httpx.patch(path, json=body, headers=headers(tok, **{"if-match": etag_of(edge, pid)}))
        assert r.status_code == 200, r.text
    title, price, stock = asyncio.run(_db_view(settings, pid))
    streak, deadline = 0, time.monotonic() + 10
    while streak < 20:  # every worker, on fresh connections, within the bound
        assert time.monotonic() < deadline, "a worker kept a stale page"
        page = httpx.get(url, headers={"connection": "close"}).json()
        v = page["variants"][0]
        same = (page["title"], v["price_minor"], v["available"]) == (title, price, stock)
        streak = streak + 1 if same else 0
