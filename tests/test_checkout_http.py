"""Checkout and promotions over HTTP on a real edge and stack: a cart checked out answers
202 with the order to pay and empties the cart; live stock reads show what is left; a price
the shopper has not seen is refused until confirmed; a short line is 409 naming it; admins
manage codes; bad input is 4xx and changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from devtools import catalog_gen
from nexuscart import config, events
from nexuscart.adapters.reservations import OUTBOX, level_key
from tests.conftest import EDGE_TEST_ENV, EdgeServer
from tests.test_cart_http import h, make_product, set_price, token

ROOT = Path(__file__).resolve().parent.parent
FAR = 2**50


@pytest.fixture(scope="module")
def edge(stack: Any, migrated: None, settings: config.Settings) -> Iterator[EdgeServer]:
    asyncio.run(catalog_gen.load(settings.postgres.dsn, settings.redis.url, 10))
    server = EdgeServer("edge.app:app", EDGE_TEST_ENV, workers=2, cwd=ROOT)
    yield server
    server.stop()
    asyncio.run(_drop_outbox(settings))


async def _drop_outbox(settings: config.Settings) -> None:
    """No relay runs here: leave no backlog for the relay tests of this session."""
    client = aioredis.Redis.from_url(settings.redis.url)
    try:
        await client.delete(OUTBOX)
    finally:
        await client.aclose()


def add(edge: EdgeServer, tok: str, pid: int, sku: str, qty: int = 1) -> None:
    r = httpx.post(
        f"{edge.url}/cart/items",
        json={"product_id": pid, "sku": sku, "quantity": qty},
        headers=h(tok),
    )
    assert r.status_code == 200, r.text


def checkout(edge: EdgeServer, tok: str, body: Any = None, key: str | None = None) -> Any:
    headers = h(tok)
    if key:
        headers["idempotency-key"] = key
    return httpx.post(f"{edge.url}/checkout", json=body, headers=headers)


def available(edge: EdgeServer, skus: list[str]) -> dict[str, int]:
    q = "&".join(f"sku={s}" for s in skus)
    items = httpx.get(f"{edge.url}/inventory?{q}").json()["items"]
    return {i["sku"]: i["available"] for i in items}


async def _placed(settings: config.Settings, order_id: int) -> events.OrderPlaced:
    client = aioredis.Redis.from_url(settings.redis.url)
    try:
        raw: Any = await client.xrange(OUTBOX)
    finally:
        await client.aclose()
    for _, f in raw:
        data = events.decode(f[b"e"]).data
        if isinstance(data, events.OrderPlaced) and data.order_id == order_id:
            return data
    raise AssertionError(f"no OrderPlaced for {order_id}")


def test_checkout_reserves_empties_the_cart_and_answers_what_to_pay(
    edge: EdgeServer, settings: config.Settings
) -> None:
    pid, (a, b), _ = make_product(edge, [1_000, 300], stock=10)
    _, tok = token("customer")
    add(edge, tok, pid, a, 2)
    add(edge, tok, pid, b, 3)
    key = uuid.uuid4().hex
    r = checkout(edge, tok, key=key)
    assert r.status_code == 202, r.text
    out = r.json()
    assert (out["subtotal_minor"], out["discount_minor"], out["total_minor"]) == (2_900, 0, 2_900)
    assert out["currency"] == "EUR"
    assert out["payment"] == f"/orders/{out['order_id']}/payment"
    assert out["order_id"] >= 2**52
    assert httpx.get(f"{edge.url}/cart", headers=h(tok)).json()["lines"] == []
    assert available(edge, [a, b]) == {a: 8, b: 7}  # live reads: on_hand less reserved
    replay = checkout(edge, tok, key=key)
    assert replay.status_code == 202
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == out
    placed = asyncio.run(_placed(settings, out["order_id"]))
    assert sorted((ln.sku, ln.quantity, ln.unit_price_minor) for ln in placed.lines) == sorted(
        [(a, 2, 1_000), (b, 3, 300)]
    )
    assert placed.total_minor == 2_900


async def _forget_counters(settings: config.Settings, sku: str) -> None:
    client = aioredis.Redis.from_url(settings.redis.url)
    try:
        await client.delete(level_key(sku))
    finally:
        await client.aclose()


def test_a_cart_shows_the_stock_left_as_the_inventory_does(
    edge: EdgeServer, settings: config.Settings
) -> None:
    """A cart's lines are read with their counters in one script call: what others reserved
    shows at once (on a change and on a read); a SKU the counters have never seen shows
    the catalog's live level."""
    pid, (a, b), _ = make_product(edge, [100, 100], stock=5)
    _, tok = token("customer")
    add(edge, tok, pid, a, 1)
    _, rival = token("customer")
    add(edge, rival, pid, a, 4)
    assert checkout(edge, rival).status_code == 202
    r = httpx.post(
        f"{edge.url}/cart/items", json={"product_id": pid, "sku": b, "quantity": 1}, headers=h(tok)
    )
    shown = {ln["sku"]: ln["available"] for ln in r.json()["lines"]}
    assert shown == available(edge, [a, b]) == {a: 1, b: 5}
    asyncio.run(_forget_counters(settings, b))
    read = httpx.get(f"{edge.url}/cart", headers=h(tok)).json()
    assert {ln["sku"]: ln["available"] for ln in read["lines"]} == {a: 1, b: 5}


def test_a_price_the_shopper_has_not_seen_is_never_charged(edge: EdgeServer) -> None:
    pid, (a,), seller = make_product(edge, [1_000])
    _, tok = token("customer")
    add(edge, tok, pid, a, 2)
    set_price(edge, seller, pid, a, 1_250)
    r = checkout(edge, tok)
    assert (r.status_code, r.json()["type"]) == (409, "/problems/price-changed")
    assert "2500" in r.json()["detail"]
    assert checkout(edge, tok, {"expected_total_minor": 2_000}).status_code == 409
    ok = checkout(edge, tok, {"expected_total_minor": 2_500})
    assert ok.status_code == 202, ok.text
    assert ok.json()["total_minor"] == 2_500


def test_a_short_line_is_409_naming_it_and_nothing_is_reserved(edge: EdgeServer) -> None:
    pid, (a, b), _ = make_product(edge, [100, 100], stock=2)
    _, tok = token("customer")
    add(edge, tok, pid, a, 2)
    add(edge, tok, pid, b, 2)
    _, rival = token("customer")
    add(edge, rival, pid, b, 1)
    assert checkout(edge, rival).status_code == 202
    r = checkout(edge, tok)
    assert r.status_code == 409
    problem = r.json()
    assert problem["type"] == "/problems/insufficient-stock"
    assert problem["errors"] == [f"{b}: 1 available"]
    assert available(edge, [a, b]) == {a: 2, b: 1}
    assert len(httpx.get(f"{edge.url}/cart", headers=h(tok)).json()["lines"]) == 2


def test_promotions_by_admins_apply_at_checkout_and_deactivate(edge: EdgeServer) -> None:
    pid, (a,), _ = make_product(edge, [2_000])
    _, admin = token("admin")
    code = f"SAVE{uuid.uuid4().hex[:6].upper()}"
    body = {
        "code": code.lower(),
        "kind": "fixed",
        "value": 500,
        "currency": "EUR",
        "min_spend_minor": 3_000,
        "starts_at_ms": 0,
        "ends_at_ms": FAR,
        "per_user_limit": 1,
    }
    key = uuid.uuid4().hex
    r = httpx.post(
        f"{edge.url}/admin/promotions", json=body, headers={**h(admin), "idempotency-key": key}
    )
    assert r.status_code == 201, r.text
    assert r.json()["code"] == code
    again = httpx.post(
        f"{edge.url}/admin/promotions", json=body, headers={**h(admin), "idempotency-key": key}
    )
    assert (again.status_code, again.headers["idempotent-replayed"]) == (200, "true")
    taken = httpx.post(f"{edge.url}/admin/promotions", json=body, headers=h(admin))
    assert (taken.status_code, taken.json()["type"]) == (409, "/problems/promo-code-taken")
    _, tok = token("customer")
    add(edge, tok, pid, a, 1)
    low = checkout(edge, tok, {"promo_code": code})
    assert (low.status_code, low.json()["type"]) == (409, "/problems/promo-min-spend")
    add(edge, tok, pid, a, 1)
    ok = checkout(edge, tok, {"promo_code": code})
    assert ok.status_code == 202, ok.text
    assert (ok.json()["discount_minor"], ok.json()["total_minor"]) == (500, 3_500)
    add(edge, tok, pid, a, 2)
    second = checkout(edge, tok, {"promo_code": code})
    assert (second.status_code, second.json()["type"]) == (409, "/problems/promo-user-limit")
    listed = httpx.get(f"{edge.url}/admin/promotions?limit=200", headers=h(admin)).json()
    assert any(p["code"] == code and p["uses"] == 1 for p in listed["items"])
    off = httpx.post(f"{edge.url}/admin/promotions/{code}/deactivate", headers=h(admin))
    assert (off.status_code, off.json()["active"]) == (200, False)
    _, other = token("customer")
    add(edge, other, pid, a, 2)
    gone = checkout(edge, other, {"promo_code": code})
    assert (gone.status_code, gone.json()["type"]) == (409, "/problems/promo-unavailable")


@pytest.mark.parametrize(
    ("path", "body", "roles", "key", "status"),
    [
        ("/checkout", None, ("customer",), None, 400),  # no Idempotency-Key
        ("/checkout", {"promo_code": ""}, ("customer",), "k", 422),
        ("/checkout", {"expected_total_minor": -1}, ("customer",), "k", 422),
        ("/checkout", {"nope": 1}, ("customer",), "k", 422),
        ("/checkout", None, ("customer",), "k", 409),  # empty cart
        ("/checkout", None, (), "k", 401),
        ("/checkout", None, ("seller",), "k", 403),
        ("/admin/promotions", {"code": "X"}, ("admin",), "k", 422),
        (
            "/admin/promotions",
            {"code": "BADWIN", "kind": "percent", "value": 10, "starts_at_ms": 5, "ends_at_ms": 5},
            ("admin",),
            "k",
            422,
        ),
        (
            "/admin/promotions",
            {"code": "PCT", "kind": "percent", "value": 101, "starts_at_ms": 0, "ends_at_ms": 9},
            ("admin",),
            "k",
            422,
        ),
        (
            "/admin/promotions",
            {"code": "FIX", "kind": "fixed", "value": 1, "starts_at_ms": 0, "ends_at_ms": 9},
            ("admin",),
            "k",
            422,
        ),
        ("/admin/promotions", {"code": "A"}, ("customer",), "k", 403),
        ("/admin/promotions/NOPE-CODE/deactivate", None, ("admin",), "k", 404),
    ],
)
def test_bad_checkout_and_promotion_input_is_4xx(
    edge: EdgeServer,
    path: str,
    body: Any,
    roles: tuple[str, ...],
    key: str | None,
    status: int,
) -> None:
    headers: dict[str, str] = {}
    if roles:
        headers["authorization"] = f"Bearer {token(*roles)[1]}"
    if key:
        headers["idempotency-key"] = uuid.uuid4().hex
    r = httpx.post(f"{edge.url}{path}", json=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
