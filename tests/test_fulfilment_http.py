"""Fulfilment, the operators' listing, the timeline and the buyer's cancellation over HTTP:
a real edge (Granian) on the real stack. Orders are placed as the checkout places them (a
reservation in Redis, OrderPlaced projected by the real projector into PostgreSQL); only
the seller of one of an order's products or an admin fulfils it; two operators cannot both
ship it; every problem case is a 4xx that changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from nexuscart import config, events
from nexuscart.adapters import postgres
from nexuscart.adapters.payments_repo import OrderToPay
from nexuscart.adapters.reservations import Line, Placed, ReservationStore
from services.orders.projector import OrdersProjector
from tests.conftest import EdgeServer
from tests.envelopes import envelope
from tests.test_payments_http import apply_webhooks, bearer, open_payment, signed, succeeded

T = TypeVar("T")
SELLER, OTHER_SELLER, ADMIN = 7_100_001, 7_100_002, 7_100_003
_n = itertools.count(int(uuid.uuid4().int % 1_000_000) * 1000)


def run(
    settings: config.Settings, job: Callable[[asyncpg.Pool, ReservationStore], Awaitable[T]]
) -> T:
    async def go() -> T:
        pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)
        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            return await job(pool, ReservationStore(client))
        finally:
            await client.aclose()
            await pool.close()

    return asyncio.run(go())


def place(settings: config.Settings, paid: bool = False) -> tuple[int, int, list[Line]]:
    """An everyday order of two lines (one of SELLER's products, one of OTHER_SELLER's):
    reserved in Redis, projected; ``paid``: its reservation confirmed and StockSold projected."""
    n = next(_n)
    user_id = 7_200_000 + n
    lines = [
        Line(f"SKU-FUL-{n}-A", 7_300_000 + 2 * n, 2, 500, 1, 10),
        Line(f"SKU-FUL-{n}-B", 7_300_001 + 2 * n, 1, 250, 1, 10),
    ]

    async def job(pool: asyncpg.Pool, rs: ReservationStore) -> int:
        for ln, seller in zip(lines, (SELLER, OTHER_SELLER), strict=True):
            await pool.execute(
                "INSERT INTO products (product_id, seller_id, category_id, title)"
                " VALUES ($1, $2, 1, 'x') ON CONFLICT DO NOTHING",
                ln.product_id,
                seller,
            )
        now = dt.datetime.now(dt.UTC).isoformat()
        placed = await rs.checkout(
            user_id=user_id, idem=f"k{n}", fingerprint=f"f{n}", lines=lines, currency="usd",
            subtotal_minor=1250, discount_minor=0, total_minor=1250, promo_code=None,
            ttl_ms=600_000, event_id=str(uuid.uuid4()), occurred_at=now,
        )  # fmt: skip
        assert isinstance(placed, Placed), placed
        oid = placed.order_id
        order = events.OrderPlaced(
            oid, user_id,
            tuple(events.OrderLine(ln.sku, ln.product_id, ln.quantity, ln.unit_price_minor)
                  for ln in lines),
            "usd", 1250, 0, 1250, None, placed.expires_at_ms,
        )  # fmt: skip
        evs = [envelope(order, user_id)]
        if paid:
            assert await rs.confirm(oid, user_id, str(uuid.uuid4()), now) == 3
            evs.append(envelope(events.StockSold(oid, None, user_id, 3), user_id))
        await OrdersProjector(pool).handle(evs)
        return oid

    return user_id, run(settings, job), lines


def fulfil(
    c: httpx.Client, edge: EdgeServer, order_id: int, who: dict[str, str], key: str, **body: Any
) -> httpx.Response:
    return c.post(
        f"{edge.url}/orders/{order_id}/fulfilment",
        json=body,
        headers={**who, "idempotency-key": key},
    )


def state(c: httpx.Client, edge: EdgeServer, user_id: int, order_id: int) -> tuple[Any, ...]:
    r = c.get(f"{edge.url}/orders/{order_id}", headers=bearer(user_id, "customer"))
    assert r.status_code == 200, r.text
    o = r.json()
    return o["status"], o["tracking_reference"], len(o["timeline"])


def test_a_seller_fulfils_ships_and_delivers_and_the_timeline_shows_each_step(
    edge: EdgeServer, settings: config.Settings
) -> None:
    user_id, oid, _ = place(settings, paid=True)
    seller = bearer(SELLER, "seller")
    with httpx.Client(timeout=10) as c:
        r = fulfil(c, edge, oid, seller, "f1", user_id=user_id, status="FULFILLING")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "FULFILLING"
        ship = {"user_id": user_id, "status": "SHIPPED", "tracking_reference": "1Z999AA1"}
        r = fulfil(c, edge, oid, seller, "s1", **ship)
        assert (r.status_code, r.json()["tracking_reference"]) == (200, "1Z999AA1")
        again = fulfil(c, edge, oid, seller, "s1", **ship)  # same key: the same answer
        assert again.status_code == 200
        assert again.json()["timeline"] == r.json()["timeline"]
        r = fulfil(c, edge, oid, bearer(ADMIN, "admin"), "d1", user_id=user_id, status="DELIVERED")
        assert r.status_code == 200, r.text
        got = c.get(f"{edge.url}/orders/{oid}", headers=bearer(user_id, "customer")).json()
    steps = [(t["from_status"], t["to_status"], t["actor"], t["actor_id"], t["reason"])
             for t in got["timeline"]]  # fmt: skip
    assert steps == [
        (None, "PENDING_PAYMENT", "system", None, "placed"),
        ("PENDING_PAYMENT", "PAID", "system", None, "stock_sold"),
        ("PAID", "FULFILLING", "seller", SELLER, "fulfil"),
        ("FULFILLING", "SHIPPED", "seller", SELLER, "ship"),
        ("SHIPPED", "DELIVERED", "admin", ADMIN, "deliver"),
    ]
    assert (got["kind"], got["status"], got["total_cents"]) == ("regular", "DELIVERED", 1250)
    assert [i["seller_id"] for i in got["items"]] == [SELLER, OTHER_SELLER]

    async def outbox(pool: asyncpg.Pool, _: ReservationStore) -> list[str]:
        rows = await pool.fetch("SELECT payload FROM orders_outbox WHERE user_id = $1", user_id)
        return sorted(events.decode(r["payload"]).data.to_status for r in rows)  # type: ignore[union-attr]

    # one OrderStatusChanged per transition (the replayed request wrote none), unless the
    # relay (not running in this test) sent them already
    assert run(settings, outbox) in (["DELIVERED", "FULFILLING", "SHIPPED"], [])


def test_only_the_seller_of_the_orders_products_or_an_admin_fulfils(
    edge: EdgeServer, settings: config.Settings
) -> None:
    user_id, oid, _ = place(settings, paid=True)
    body = {"user_id": user_id, "status": "FULFILLING"}
    with httpx.Client(timeout=10) as c:
        before = state(c, edge, user_id, oid)
        stranger = fulfil(c, edge, oid, bearer(7_100_099, "seller"), "a", **body)
        assert (stranger.status_code, stranger.json()["type"]) == (403, "/problems/not-the-seller")
        assert fulfil(c, edge, oid, bearer(user_id, "customer"), "b", **body).status_code == 403
        assert fulfil(c, edge, oid, {}, "c", **body).status_code == 401
        assert state(c, edge, user_id, oid) == before
        # the other line's seller may (one of its products is in the order)
        assert fulfil(c, edge, oid, bearer(OTHER_SELLER, "seller"), "d", **body).status_code == 200


def test_two_operators_cannot_both_ship(edge: EdgeServer, settings: config.Settings) -> None:
    user_id, oid, _ = place(settings, paid=True)
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def ship(who: dict[str, str], key: str) -> None:
        with httpx.Client(timeout=10) as c:
            barrier.wait()
            body = {"user_id": user_id, "status": "SHIPPED", "tracking_reference": key}
            r = c.post(
                f"{edge.url}/orders/{oid}/fulfilment",
                json=body,
                headers={**who, "idempotency-key": key, "if-match": '"PAID"'},
            )
            answers.append(r.status_code)

    threads = [
        threading.Thread(target=ship, args=(bearer(SELLER, "seller"), "TRK-A")),
        threading.Thread(target=ship, args=(bearer(ADMIN, "admin"), "TRK-B")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 412]
    with httpx.Client(timeout=10) as c:
        status, tracking, steps = state(c, edge, user_id, oid)
        assert (status, steps) == ("SHIPPED", 3)  # placed, sold, one shipment
        assert tracking in ("TRK-A", "TRK-B")
        # without If-Match the second shipment is still refused: SHIPPED -> SHIPPED is no step
        late = fulfil(c, edge, oid, bearer(SELLER, "seller"), "TRK-C", user_id=user_id,
                      status="SHIPPED", tracking_reference="TRK-C")  # fmt: skip
        assert (late.status_code, late.json()["type"]) == (409, "/problems/illegal-transition")


@pytest.mark.parametrize(
    ("body", "headers", "status", "slug"),
    [
        ({"status": "SHIPPED"}, {}, 422, "tracking-reference-required"),
        ({"status": "DELIVERED"}, {}, 409, "illegal-transition"),
        ({"status": "CANCELLED"}, {}, 422, "validation-error"),
        ({"status": "FULFILLING", "extra": 1}, {}, 422, "validation-error"),
        ({"status": "FULFILLING"}, {"if-match": '"NOPE"'}, 400, "if-match-invalid"),
        ({"status": "FULFILLING"}, {"if-match": '"FULFILLING"'}, 412, "status-changed"),
        ({"status": "FULFILLING", "tracking_reference": "a b"}, {}, 422, "validation-error"),
        ({"status": "FULFILLING", "user_id": 1}, {}, 404, "not-found"),
        ({"status": "FULFILLING"}, {"idempotency-key": ""}, 400, "idempotency-key-required"),
    ],
)
def test_problem_cases_are_4xx_and_change_nothing(
    edge: EdgeServer,
    settings: config.Settings,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    slug: str,
) -> None:
    user_id, oid, _ = place(settings, paid=True)
    with httpx.Client(timeout=10) as c:
        before = state(c, edge, user_id, oid)
        r = c.post(
            f"{edge.url}/orders/{oid}/fulfilment",
            json={"user_id": user_id, **body},
            headers={**bearer(SELLER, "seller"), "idempotency-key": "p", **headers},
        )
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == f"/problems/{slug}"
        assert state(c, edge, user_id, oid) == before


def test_the_listing_shows_admins_every_order_and_sellers_their_own_by_status_and_cursor(
    edge: EdgeServer, settings: config.Settings
) -> None:
    placed = [place(settings, paid=True) for _ in range(3)]
    ids = sorted((oid for _, oid, _ in placed), reverse=True)
    with httpx.Client(timeout=10) as c:
        seen: list[int] = []
        cursor: str | None = None
        for _ in range(50):  # pages of 2 until ours are all seen
            q: dict[str, str | int] = {"status": "PAID", "limit": 2}
            if cursor:
                q["cursor"] = cursor
            r = c.get(f"{edge.url}/admin/orders", params=q, headers=bearer(ADMIN, "admin"))
            assert r.status_code == 200, r.text
            page = r.json()
            assert all(o["status"] == "PAID" for o in page["items"])
            seen += [o["order_id"] for o in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None or set(ids) <= set(seen):
                break
        assert set(ids) <= set(seen)
        assert seen == sorted(seen, reverse=True)
        mine = c.get(f"{edge.url}/admin/orders", params={"limit": 100},
                     headers=bearer(7_100_098, "seller"))  # fmt: skip
        assert (mine.status_code, mine.json()["items"]) == (200, [])
        theirs = c.get(f"{edge.url}/admin/orders", params={"limit": 100},
                       headers=bearer(SELLER, "seller")).json()["items"]  # fmt: skip
        assert set(ids) <= {o["order_id"] for o in theirs}
        bad = c.get(f"{edge.url}/admin/orders", params={"status": "nope"},
                    headers=bearer(ADMIN, "admin"))  # fmt: skip
        assert bad.status_code == 400
        assert c.get(f"{edge.url}/admin/orders", headers=bearer(1, "customer")).status_code == 403


def test_a_buyer_cancels_an_unpaid_everyday_order_and_its_reservation_is_released_once(
    edge: EdgeServer, settings: config.Settings
) -> None:
    user_id, oid, lines = place(settings)
    buyer = {**bearer(user_id, "customer"), "idempotency-key": "x1"}
    with httpx.Client(timeout=10) as c:
        r = c.post(f"{edge.url}/orders/{oid}/cancel", headers=buyer)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "CANCELLED"
        again = c.post(
            f"{edge.url}/orders/{oid}/cancel", headers={**buyer, "idempotency-key": "x2"}
        )
        assert (again.status_code, again.json()["status"]) == (200, "CANCELLED")
        assert again.json()["timeline"] == r.json()["timeline"]
        stranger = {**bearer(user_id + 1, "customer"), "idempotency-key": "x3"}
        other = c.post(f"{edge.url}/orders/{oid}/cancel", headers=stranger)
        assert other.status_code == 404
    steps = [(t["to_status"], t["actor"]) for t in r.json()["timeline"]]
    assert steps == [("PENDING_PAYMENT", "system"), ("CANCELLED", "buyer")]

    async def levels(_: asyncpg.Pool, rs: ReservationStore) -> list[int]:
        lv = await rs.levels([ln.sku for ln in lines])
        return [lv[ln.sku].reserved for ln in lines]

    assert run(settings, levels) == [0, 0]


def test_a_buyer_cancels_a_paid_everyday_order_before_shipment_and_gets_refunded(
    edge: EdgeServer, settings: config.Settings
) -> None:
    user_id, oid, _ = place(settings, paid=True)
    order = OrderToPay(user_id, oid, None, 1250, "usd")
    open_payment(settings, order)
    body = succeeded(order)
    with httpx.Client(timeout=10) as c:
        assert c.post(f"{edge.url}/webhooks/stripe", content=body, headers=signed(body)).is_success
        apply_webhooks(settings)  # as the payments service does
        buyer = {**bearer(user_id, "customer"), "idempotency-key": "c1"}
        r = c.post(f"{edge.url}/orders/{oid}/cancel", headers=buyer)
        assert r.status_code == 201, r.text
        assert r.json()["amount_cents"] == 1250
        assert c.post(f"{edge.url}/orders/{oid}/cancel", headers=buyer).json() == r.json()
        status, _, steps = state(c, edge, user_id, oid)
        assert (status, steps) == ("REFUNDED", 3)
        # nobody ships a refunded order
        late = fulfil(c, edge, oid, bearer(SELLER, "seller"), "s", user_id=user_id,
                      status="SHIPPED", tracking_reference="T")  # fmt: skip
        assert late.status_code == 409


def test_a_shipped_order_cannot_be_cancelled(edge: EdgeServer, settings: config.Settings) -> None:
    user_id, oid, _ = place(settings, paid=True)
    with httpx.Client(timeout=10) as c:
        ship = {"user_id": user_id, "status": "SHIPPED", "tracking_reference": "T1"}
        assert fulfil(c, edge, oid, bearer(SELLER, "seller"), "s", **ship).status_code == 200
        before = state(c, edge, user_id, oid)
        buyer = {**bearer(user_id, "customer"), "idempotency-key": "c"}
        r = c.post(f"{edge.url}/orders/{oid}/cancel", headers=buyer)
        assert (r.status_code, r.json()["type"]) == (409, "/problems/not-cancellable")
        assert state(c, edge, user_id, oid) == before


def test_my_orders_lists_flash_and_everyday_orders(
    edge: EdgeServer, settings: config.Settings
) -> None:
    user_id, oid, _ = place(settings)
    flash = events.StockReserved(oid - (1 << 52) + 5, 900_003, user_id, "SKU-F", 1, 300, "usd",
                                 1_900_000_000_000)  # fmt: skip

    async def project(pool: asyncpg.Pool, _: ReservationStore) -> None:
        await OrdersProjector(pool).handle([envelope(flash, user_id)])

    run(settings, project)
    with httpx.Client(timeout=10) as c:
        r = c.get(f"{edge.url}/users/me/orders", headers=bearer(user_id, "customer"))
    assert r.status_code == 200, r.text
    kinds = [(o["order_id"], o["kind"]) for o in r.json()["items"]]
    assert kinds == [(oid, "regular"), (flash.order_id, "flash")]
    msgspec.json.decode(r.content)  # a plain JSON page


def test_an_admin_cancels_a_buyers_order_before_shipment_and_no_one_else_may(
    edge: EdgeServer, settings: config.Settings
) -> None:
    unpaid_user, unpaid, _ = place(settings)
    paid_user, paid, _ = place(settings, paid=True)
    order = OrderToPay(paid_user, paid, None, 1250, "usd")
    open_payment(settings, order)
    body = succeeded(order)
    admin = {**bearer(ADMIN, "admin"), "idempotency-key": "a1"}
    with httpx.Client(timeout=10) as c:
        assert c.post(f"{edge.url}/webhooks/stripe", content=body, headers=signed(body)).is_success
        apply_webhooks(settings)  # as the payments service does
        url = f"{edge.url}/admin/orders/{unpaid}/cancel"
        for who in (bearer(SELLER, "seller"), bearer(unpaid_user, "customer")):
            r = c.post(url, json={"user_id": unpaid_user}, headers={**who, "idempotency-key": "x"})
            assert r.status_code == 403
        assert state(c, edge, unpaid_user, unpaid)[0] == "PENDING_PAYMENT"
        r = c.post(url, json={"user_id": unpaid_user}, headers=admin)
        assert r.status_code == 200, r.text
        assert [(t["to_status"], t["actor"], t["actor_id"]) for t in r.json()["timeline"]][-1] == (
            "CANCELLED",
            "admin",
            ADMIN,
        )
        r = c.post(f"{edge.url}/admin/orders/{paid}/cancel", json={"user_id": paid_user},
                   headers=admin)  # fmt: skip
        assert (r.status_code, r.json()["amount_cents"]) == (201, 1250)
        assert state(c, edge, paid_user, paid)[0] == "REFUNDED"
