"""Everyday orders through the real services (outbox relay, orders, inventory, payments) on
real Kafka, Redis, PostgreSQL and stripe-mock, with a real edge: checkout -> intent ->
webhook -> paid -> fulfilment -> delivered, unpaid reservations expire, a paid order
cancelled before shipment is refunded and its units go back. The orders, inventory and
payments services are killed with SIGKILL mid-run (twice): no order is lost, and every
reservation ends confirmed, released or still expiring, in Redis and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
import itertools
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from devtools import devstack
from nexuscart import config
from nexuscart.adapters.payments_repo import OrderToPay
from nexuscart.adapters.reservations import EXP, RES, SOLD, Line, Placed, ReservationStore
from tests.conftest import EdgeServer
from tests.test_flash_sale_pipeline import Service
from tests.test_flash_sale_pipeline import _until as until
from tests.test_payments_http import bearer, signed, succeeded

QTY = 2
PRICE = 400
_users = itertools.count(9_100_000 + (uuid.uuid4().int % 1000) * 1000)


@pytest.fixture
def services(stack: devstack.Stack, migrated: None) -> Iterator[dict[str, Service]]:
    names = ("outbox_relay", "orders", "inventory", "payments")
    svcs = {n: Service(n, stack.workdir) for n in names}
    for s in svcs.values():
        s.start()
    yield svcs
    for s in svcs.values():
        s.stop()


def crash_and_restart(svcs: dict[str, Service]) -> None:
    for name in ("orders", "inventory", "payments"):
        svcs[name].kill()  # SIGKILL: no clean shutdown, no offset commit
        svcs[name].start()


async def checkout(rs: ReservationStore, sku: str, ttl_ms: int) -> tuple[int, int]:
    user_id = next(_users)
    placed = await rs.checkout(
        user_id=user_id, idem=f"k{user_id}", fingerprint="f",
        lines=[Line(sku, 9_900_001, QTY, PRICE, 1, 1_000)], currency="usd",
        subtotal_minor=QTY * PRICE, discount_minor=0, total_minor=QTY * PRICE, promo_code=None,
        ttl_ms=ttl_ms, event_id=str(uuid.uuid4()),
        occurred_at=dt.datetime.now(dt.UTC).isoformat(),
    )  # fmt: skip
    assert isinstance(placed, Placed), placed
    return user_id, placed.order_id


async def statuses(dsn: str, orders: list[tuple[int, int]]) -> dict[int, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT order_id, status FROM orders WHERE order_id = ANY($1::bigint[])",
            [o for _, o in orders],
        )
    finally:
        await conn.close()
    return {r["order_id"]: r["status"] for r in rows}


async def test_every_order_survives_kill_9_and_each_reservation_is_confirmed_released_or_expiring(
    settings: config.Settings, services: dict[str, Service], edge: EdgeServer
) -> None:
    client = aioredis.Redis.from_url(settings.redis.url)
    rs = ReservationStore(client)
    await rs.register_outbox()
    sku = f"SKU-FLOW-{uuid.uuid4().hex[:8]}"
    dsn = settings.postgres.dsn
    try:
        payers: list[tuple[int, int]] = []
        expiring: list[tuple[int, int]] = []
        pending: list[tuple[int, int]] = []
        for i in range(30):
            if i == 15:
                crash_and_restart(services)
            kind = i % 3
            ttl = 2_000 if kind == 1 else 600_000
            order = await checkout(rs, sku, ttl)
            (payers, expiring, pending)[kind].append(order)
        everything = payers + expiring + pending

        async def all_projected() -> bool:
            return len(await statuses(dsn, everything)) == len(everything)

        await until(all_projected)
        async with httpx.AsyncClient(base_url=edge.url, timeout=10) as c:
            for n, (user_id, order_id) in enumerate(payers):
                if n == len(payers) // 2:
                    crash_and_restart(services)
                body = succeeded(OrderToPay(user_id, order_id, None, QTY * PRICE, "usd"))
                r = await c.post("/webhooks/stripe", content=body, headers=signed(body))
                assert r.status_code == 200, r.text

        async def settled() -> bool:
            st = await statuses(dsn, everything)
            return all(st[o] == "PAID" for _, o in payers) and all(
                st[o] == "EXPIRED" for _, o in expiring
            )

        await until(settled)
        final = await statuses(dsn, everything)
        assert {final[o] for _, o in pending} == {"PENDING_PAYMENT"}
        # Redis agrees: paid orders sold, expired ones gone, pending ones still expiring
        sold = await client.hmget(SOLD, [str(o) for _, o in payers])
        assert all(v is not None for v in sold)
        open_res = await client.hmget(RES, [str(o) for _, o in expiring + pending])
        assert open_res[: len(expiring)] == [None] * len(expiring)
        assert all(v is not None for v in open_res[len(expiring) :])
        deadlines = [await client.zscore(EXP, str(o)) for _, o in pending]
        assert all(d is not None and d > time.time() * 1000 for d in deadlines)
        level = (await rs.levels([sku]))[sku]
        assert (level.reserved, level.sold) == (QTY * len(pending), QTY * len(payers))
        assert level.on_hand == level.available + level.reserved + level.sold

        # after the crashes: fulfilment to delivery, and a paid order cancelled and refunded
        (buyer, first), (buyer2, second) = payers[0], payers[1]
        async with httpx.AsyncClient(base_url=edge.url, timeout=10) as c:
            admin = bearer(1, "admin")
            steps = [("FULFILLING", None), ("SHIPPED", "TRK-1"), ("DELIVERED", None)]
            for status, tracking in steps:
                r = await c.post(
                    f"/orders/{first}/fulfilment",
                    json={"user_id": buyer, "status": status, "tracking_reference": tracking},
                    headers={**admin, "idempotency-key": status},
                )
                assert r.status_code == 200, r.text
            assert r.json()["status"] == "DELIVERED"
            cancel = await c.post(
                f"/orders/{second}/cancel",
                headers={**bearer(buyer2, "customer"), "idempotency-key": "c"},
            )
            assert cancel.status_code in (201, 503), cancel.text  # 503: the sweeper refunds

        async def restored() -> bool:
            lv = (await rs.levels([sku]))[sku]
            return lv.sold == QTY * (len(payers) - 1)

        await until(restored)  # inventory put the units back (OrderStatusChanged on orders.v1)
        assert (await statuses(dsn, [(buyer2, second)]))[second] == "REFUNDED"
    finally:
        await client.aclose()
