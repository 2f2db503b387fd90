"""Carts over HTTP on a real edge (Granian, 2 workers) and the real stack: guest carts by
token, shopper carts by user, merged; lines at today's price and stock; a price change shown
with both prices; limits and bad input answered 4xx with nothing changed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools import catalog_gen
from nexuscart import auth, config
from nexuscart.domain import cart as rules
from tests.conftest import EDGE_TEST_ENV, EdgeServer

ROOT = Path(__file__).resolve().parent.parent
SECRET = config.dev_defaults()["JWT_SECRET"]
_ids = iter(range(60_000_000, 61_000_000))


def token(*roles: str) -> tuple[int, str]:
    uid = next(_ids)
    return uid, auth.issue(SECRET, uid, roles=roles)


@pytest.fixture(scope="module")
def edge(stack: Any, migrated: None, settings: config.Settings) -> Iterator[EdgeServer]:
    asyncio.run(catalog_gen.load(settings.postgres.dsn, settings.redis.url, 10))
    server = EdgeServer("edge.app:app", EDGE_TEST_ENV, workers=2, cwd=ROOT)
    yield server
    server.stop()


def h(tok: str | None = None, cart: str | None = None, key: bool = True) -> dict[str, str]:
    out = {"idempotency-key": uuid.uuid4().hex} if key else {}
    if tok:
        out["authorization"] = f"Bearer {tok}"
    if cart:
        out["cart-token"] = cart
    return out


def leaf_category() -> int:
    cats = catalog_gen.categories()
    parents = {c.parent_id for c in cats}
    return next(c.category_id for c in cats if c.category_id not in parents)


def make_product(
    edge: EdgeServer, prices: list[int], stock: int = 50, currency: str = "EUR"
) -> tuple[int, list[str], str]:
    """An active product with one variant per price, each stocked; -> (id, skus, seller)."""
    _, seller = token("seller")
    skus = [f"C-{uuid.uuid4().hex[:10]}" for _ in prices]
    body = {
        "category_id": leaf_category(),
        "title": "Cart test item",
        "brand": "Acme",
        "description": "x",
        "attributes": {},
        "images": [],
        "status": "active",
        "variants": [
            {"sku": s, "price_minor": p, "currency": currency, "attributes": {"n": str(i)}}
            for i, (s, p) in enumerate(zip(skus, prices, strict=True))
        ],
    }
    r = httpx.post(f"{edge.url}/products", json=body, headers=h(seller))
    assert r.status_code == 201, r.text
    pid = r.json()["product_id"]
    for s in skus:
        r = httpx.post(
            f"{edge.url}/products/{pid}/variants/{s}/stock",
            json={"delta": stock, "reason": "restock"},
            headers=h(seller),
        )
        assert r.status_code == 200, r.text
    return pid, skus, seller


def set_price(edge: EdgeServer, seller: str, pid: int, sku: str, price: int) -> None:
    etag = httpx.get(f"{edge.url}/products/{pid}").headers["etag"]
    r = httpx.patch(
        f"{edge.url}/products/{pid}/variants/{sku}",
        json={"price_minor": price},
        headers={**h(seller), "if-match": etag},
    )
    assert r.status_code == 200, r.text


def test_a_guest_cart_gets_a_token_and_shows_prices_stock_and_totals(edge: EdgeServer) -> None:
    pid, (a, b), _ = make_product(edge, [1_000, 250], stock=3)
    r = httpx.post(
        f"{edge.url}/cart/items", json={"product_id": pid, "sku": a, "quantity": 2}, headers=h()
    )
    assert r.status_code == 200, r.text
    cart_token = r.headers["cart-token"]
    assert rules.valid_token(cart_token)
    r = httpx.post(
        f"{edge.url}/cart/items",
        json={"product_id": pid, "sku": b, "quantity": 3},
        headers=h(cart=cart_token),
    )
    assert "cart-token" not in r.headers
    cart = r.json()
    assert cart["currency"] == "EUR"
    assert cart["subtotal_minor"] == 2 * 1_000 + 3 * 250
    assert [(ln["sku"], ln["quantity"], ln["stock_status"]) for ln in cart["lines"]] == sorted(
        [(a, 2, "low_stock"), (b, 3, "low_stock")]
    )
    # set, remove, and an empty guest read
    r = httpx.put(f"{edge.url}/cart/items/{a}", json={"quantity": 1}, headers=h(cart=cart_token))
    assert r.json()["subtotal_minor"] == 1_000 + 750
    r = httpx.delete(f"{edge.url}/cart/items/{b}", headers=h(cart=cart_token))
    assert [ln["sku"] for ln in r.json()["lines"]] == [a]
    assert httpx.get(f"{edge.url}/cart").json()["lines"] == []


def test_a_guest_cart_merges_into_the_shoppers_cart_once(edge: EdgeServer) -> None:
    pid, (a, b), _ = make_product(edge, [500, 700])
    _, tok = token("customer")
    httpx.post(f"{edge.url}/cart/items", json={"product_id": pid, "sku": a}, headers=h(tok))
    r = httpx.post(
        f"{edge.url}/cart/items", json={"product_id": pid, "sku": a, "quantity": 2}, headers=h()
    )
    guest = r.headers["cart-token"]
    httpx.post(f"{edge.url}/cart/items", json={"product_id": pid, "sku": b}, headers=h(cart=guest))
    r = httpx.post(f"{edge.url}/cart/merge", headers=h(tok, cart=guest))
    assert r.status_code == 200, r.text
    assert {ln["sku"]: ln["quantity"] for ln in r.json()["lines"]} == {a: 3, b: 1}
    again = httpx.post(f"{edge.url}/cart/merge", headers=h(tok, cart=guest))
    assert {ln["sku"]: ln["quantity"] for ln in again.json()["lines"]} == {a: 3, b: 1}
    assert httpx.get(f"{edge.url}/cart", headers=h(cart=guest)).json()["lines"] == []
    assert httpx.post(f"{edge.url}/cart/merge", headers=h(cart=guest)).status_code == 401


def test_a_retried_cart_change_is_applied_once(edge: EdgeServer) -> None:
    pid, (a,), _ = make_product(edge, [100])
    _, tok = token("customer")
    headers = h(tok)
    for _ in range(3):
        r = httpx.post(
            f"{edge.url}/cart/items", json={"product_id": pid, "sku": a}, headers=headers
        )
        assert r.status_code == 200, r.text
    assert [ln["quantity"] for ln in r.json()["lines"]] == [1]
    again = httpx.post(f"{edge.url}/cart/items", json={"product_id": pid, "sku": a}, headers=h(tok))
    assert [ln["quantity"] for ln in again.json()["lines"]] == [2]


def test_a_price_change_shows_both_prices(edge: EdgeServer) -> None:
    pid, (a,), seller = make_product(edge, [1_000])
    _, tok = token("customer")
    httpx.post(f"{edge.url}/cart/items", json={"product_id": pid, "sku": a}, headers=h(tok))
    set_price(edge, seller, pid, a, 1_200)
    cart = httpx.get(f"{edge.url}/cart", headers=h(tok)).json()
    assert cart["price_changed"] is True
    (line,) = cart["lines"]
    assert (line["unit_price_minor"], line["price_when_added_minor"]) == (1_200, 1_000)
    assert cart["subtotal_minor"] == 1_200


@pytest.mark.parametrize(
    ("method", "path", "body", "extra", "status", "slug"),
    [
        ("POST", "/cart/items", {"product_id": 1, "sku": "A", "quantity": 0}, {}, 422, None),
        ("POST", "/cart/items", {"product_id": 1, "sku": "A", "quantity": 100}, {}, 422, None),
        ("POST", "/cart/items", {"product_id": 1, "sku": "x" * 65}, {}, 422, None),
        ("POST", "/cart/items", {"product_id": 1, "sku": "A", "extra": 1}, {}, 422, None),
        ("POST", "/cart/items", {"product_id": 1, "sku": "bad sku"}, {}, 422, None),
        ("POST", "/cart/items", [1], {}, 422, None),
        ("GET", "/cart", None, {"cart-token": "short"}, 400, "bad-cart-token"),
        ("PUT", "/cart/items/A", {"quantity": 1}, {"authorization": "Bearer no"}, 404, None),
        ("PUT", "/cart/items/A", {"quantity": 1}, {}, 404, "not-in-cart"),
        ("PUT", "/cart/items/A", {"quantity": -1}, {}, 422, None),
        ("POST", "/cart/merge", None, {}, 401, None),
        ("POST", "/cart/items", {"product_id": 1, "sku": "A"}, {"idempotency-key": ""}, 400, None),
    ],
)
def test_bad_cart_input_is_4xx(
    edge: EdgeServer,
    method: str,
    path: str,
    body: Any,
    extra: dict[str, str],
    status: int,
    slug: str | None,
) -> None:
    r = httpx.request(method, f"{edge.url}{path}", json=body, headers={**h(key=True), **extra})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if slug:
        assert r.json()["type"] == f"/problems/{slug}"


def test_cart_limits_and_rules_refuse_and_change_nothing(edge: EdgeServer) -> None:
    pid, (a,), _ = make_product(edge, [100])
    usd, (u,), _ = make_product(edge, [100], currency="USD")
    _, draft_seller = token("seller")
    _, tok = token("customer")
    add = f"{edge.url}/cart/items"
    assert httpx.post(add, json={"product_id": pid, "sku": a, "quantity": 99}, headers=h(tok))
    over = httpx.post(add, json={"product_id": pid, "sku": a}, headers=h(tok))
    assert (over.status_code, over.json()["type"]) == (422, "/problems/quantity-limit")
    mixed = httpx.post(add, json={"product_id": usd, "sku": u}, headers=h(tok))
    assert (mixed.status_code, mixed.json()["type"]) == (409, "/problems/mixed-currency")
    unknown = httpx.post(add, json={"product_id": pid, "sku": "NOPE-1"}, headers=h(tok))
    assert (unknown.status_code, unknown.json()["type"]) == (409, "/problems/product-unavailable")
    gone = httpx.post(add, json={"product_id": 10**15, "sku": "NOPE-1"}, headers=h(tok))
    assert gone.status_code == 409
    cart = httpx.get(f"{edge.url}/cart", headers=h(tok)).json()
    assert [(ln["sku"], ln["quantity"]) for ln in cart["lines"]] == [(a, 99)]
    del draft_seller
