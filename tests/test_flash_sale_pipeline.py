"""Holds -> outbox -> Kafka -> orders in PostgreSQL, exactly once, across crashes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from devtools import devstack
from devtools.proc import Process
from nexuscart import config, events
from nexuscart.adapters import kafka
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.domain.flash_sale import Outcome
from services.inventory.holds import reconcile
from tests.envelopes import encode, envelope
from tests.test_flash_sale_store import buy, new_sale

ROOT = Path(__file__).resolve().parent.parent


class Service(Process):
    """`python -m services.<name>` as a real child process that a test can kill -9."""

    def __init__(self, name: str, logdir: Path):
        super().__init__(name, [sys.executable, "-m", f"services.{name}"], cwd=ROOT)
        self.log: Path = logdir / f"{name}.log"

    def start(self) -> Service:
        pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        self.env = {**os.environ, "PYTHONPATH": pythonpath}  # the environment of this moment
        super().start()
        return self


@pytest.fixture
def services(stack: devstack.Stack, migrated: None) -> Iterator[dict[str, Service]]:
    svcs = {n: Service(n, stack.workdir) for n in ("outbox_relay", "orders", "inventory")}
    for s in svcs.values():
        s.start()
    yield svcs
    for s in svcs.values():
        s.stop()


async def _orders_of(dsn: str, sale_id: int) -> dict[int, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT order_id, status FROM orders WHERE sale_id = $1", sale_id)
    finally:
        await conn.close()
    return {r["order_id"]: r["status"] for r in rows}


async def _until(predicate: object, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached in time")


async def test_every_hold_gets_exactly_one_order_across_relay_and_consumer_crashes(
    settings: config.Settings, store: FlashSaleStore, services: dict[str, Service]
) -> None:
    sale = new_sale(units=400, limit=1)
    await store.upsert(sale)
    first = await asyncio.gather(*(buy(store, sale, user=u) for u in range(200)))
    await asyncio.sleep(0.3)  # let some of them flow through
    for s in services.values():
        s.kill()  # crash both mid-stream
    rest = await asyncio.gather(*(buy(store, sale, user=u) for u in range(200, 400)))
    for s in services.values():
        s.start()
    held = {r[1] for r in [*first, *rest] if r[0] == Outcome.OK}
    assert len(held) == 400

    async def all_projected() -> bool:
        return set(await _orders_of(settings.postgres.dsn, sale.sale_id)) == held

    await _until(all_projected)
    conn = await asyncpg.connect(settings.postgres.dsn)
    try:
        n_items = await conn.fetchval(
            "SELECT count(*) FROM order_items i JOIN orders o USING (user_id, order_id)"
            " WHERE o.sale_id = $1",
            sale.sale_id,
        )
    finally:
        await conn.close()
    assert n_items == 400  # one item per order: nothing doubled by redelivery
    pool = await asyncpg.create_pool(settings.postgres.dsn, min_size=1, max_size=2)
    try:
        report = next(r for r in await reconcile(store, pool) if r.sale_id == sale.sale_id)
    finally:
        await pool.close()
    assert report.redis_ok, report
    assert report.pg_ok, report


async def test_payment_succeeded_confirms_the_hold_and_the_order(
    settings: config.Settings, store: FlashSaleStore, services: dict[str, Service]
) -> None:
    sale = new_sale(units=3, limit=1)
    await store.upsert(sale)
    code, order_id, _, _ = await buy(store, sale, user=77)
    assert code == Outcome.OK

    async def pending() -> bool:
        return (await _orders_of(settings.postgres.dsn, sale.sale_id)).get(
            order_id
        ) == "PENDING_PAYMENT"

    await _until(pending)
    producer = kafka.producer(settings.kafka, "test-payments")
    await producer.start()
    try:
        env = envelope(
            events.PaymentSucceeded(
                order_id=order_id,
                sale_id=sale.sale_id,
                user_id=77,
                amount_cents=1999,
                payment_id=f"pi_{uuid.uuid4().hex}",
            ),
            key=77,
        )
        # published twice: the consumer must apply it once
        for _ in range(2):
            await producer.send_and_wait(events.PAYMENTS_TOPIC, encode(env), key=b"77")
    finally:
        await producer.stop()

    async def confirmed() -> bool:
        # CONFIRMED before issue 11: PAID now means paid and the hold sold
        return (await _orders_of(settings.postgres.dsn, sale.sale_id)).get(order_id) == "PAID"

    await _until(confirmed)
    assert await store.stock(sale.sale_id) == (2, 0, 1)


async def test_acknowledged_holds_survive_a_redis_crash(
    stack: devstack.Stack, store: FlashSaleStore
) -> None:
    sale = new_sale(units=50, limit=1)
    await store.upsert(sale)
    results = await asyncio.gather(*(buy(store, sale, user=u) for u in range(30)))
    acked = {r[1] for r in results if r[0] == Outcome.OK}
    redis_server = stack.servers["redis"]
    redis_server.kill()  # SIGKILL: no shutdown save; only the AOF (fsync always) remains
    redis_server.start()
    await store.client.connection_pool.disconnect()
    t = await store.totals(sale.sale_id)
    assert (t["available"], t["held"], t["held_entries"]) == (20, 30, 30)
    holds = await store.client.hkeys(store.keys(sale.sale_id).holds)
    assert {int(h) for h in holds} == acked
