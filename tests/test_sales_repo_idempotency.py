"""Create-sale idempotency (issue 8, item 9): the whole request is the key's contract, and a
replay draws nothing from the sale id sequence. Through the real edge and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from nexuscart import config
from nexuscart.adapters import sales_repo
from nexuscart.domain.flash_sale import SaleSpec
from tests.conftest import EdgeServer
from tests.test_flash_sale_http import ADMIN


def _body() -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {
        "sku": "IDEM-1",
        "units": 10,
        "price_cents": 999,
        "per_user_limit": 2,
        "starts_at_ms": now - 1000,
        "ends_at_ms": now + 3_600_000,
        "currency": "usd",
        "hold_ttl_s": 300,
    }


def _create(edge: EdgeServer, body: dict[str, Any], key: str) -> httpx.Response:
    return httpx.post(
        f"{edge.url}/admin/flash-sales",
        json=body,
        headers={**ADMIN, "idempotency-key": key},
        timeout=10,
    )


async def _sequence_value(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        seq = await conn.fetchval("SELECT pg_get_serial_sequence('flash_sales', 'sale_id')")
        value: int = await conn.fetchval(f"SELECT last_value FROM {seq}")
        return value
    finally:
        await conn.close()


CHANGES: list[tuple[str, Any]] = [
    ("sku", "IDEM-2"),
    ("units", 11),
    ("price_cents", 1000),
    ("per_user_limit", 3),
    ("starts_at_ms", -1),  # replaced by "one ms later" below
    ("ends_at_ms", -1),
    ("currency", "eur"),
    ("hold_ttl_s", 301),
]


@pytest.mark.parametrize(("field", "value"), CHANGES, ids=[f for f, _ in CHANGES])
def test_create_sale_replay_with_a_changed_field_is_422(
    edge: EdgeServer, field: str, value: Any
) -> None:
    body = _body()
    key = uuid.uuid4().hex
    first = _create(edge, body, key)
    assert first.status_code == 201, first.text
    changed = {**body, field: body[field] + 1 if value == -1 else value}
    r = _create(edge, changed, key)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/idempotency-key-reused")


def test_create_sale_replay_without_the_default_ttl_is_the_same_request(
    edge: EdgeServer,
) -> None:
    body = _body()
    del body["hold_ttl_s"]
    key = uuid.uuid4().hex
    first = _create(edge, body, key)
    assert first.status_code == 201, first.text
    stated = {**body, "hold_ttl_s": first.json()["hold_ttl_s"]}
    again = _create(edge, stated, key)
    assert again.status_code == 200, again.text
    assert again.json()["sale_id"] == first.json()["sale_id"]


def test_create_sale_replays_return_the_sale_and_draw_no_sale_id(
    edge: EdgeServer, settings: config.Settings
) -> None:
    body = _body()
    key = uuid.uuid4().hex
    first = _create(edge, body, key)
    assert first.status_code == 201, first.text
    before = asyncio.run(_sequence_value(settings.postgres.dsn))
    for _ in range(5):
        r = _create(edge, body, key)
        assert r.status_code == 200, r.text
        assert r.json()["sale_id"] == first.json()["sale_id"]
    assert _create(edge, {**body, "units": 99}, key).status_code == 422
    assert asyncio.run(_sequence_value(settings.postgres.dsn)) == before


async def test_concurrent_first_creates_with_one_key_make_one_sale(
    settings: config.Settings, migrated: None
) -> None:
    now = int(time.time() * 1000)
    spec = SaleSpec(sku="RACE", units=5, price_cents=1, starts_at_ms=now, ends_at_ms=now + 60_000)
    key = uuid.uuid4().hex
    pool = await asyncpg.create_pool(settings.postgres.dsn, min_size=8, max_size=8)
    try:
        results = await asyncio.gather(
            *(sales_repo.create_sale(pool, key, spec, 600) for _ in range(8))
        )
    finally:
        await pool.close()
    assert len({sale.sale_id for sale, _ in results}) == 1
    assert sum(not existed for _, existed in results) == 1


async def test_a_sale_created_before_fingerprints_is_compared_by_its_fields(
    settings: config.Settings, migrated: None
) -> None:
    now = int(time.time() * 1000)
    spec = SaleSpec(sku="OLD", units=5, price_cents=1, starts_at_ms=now, ends_at_ms=now + 60_000)
    key = uuid.uuid4().hex
    pool = await asyncpg.create_pool(settings.postgres.dsn, min_size=1, max_size=2)
    try:
        sale, existed = await sales_repo.create_sale(pool, key, spec, 600)
        assert not existed
        await pool.execute(
            "UPDATE flash_sales SET create_fingerprint = NULL WHERE sale_id = $1", sale.sale_id
        )
        again, existed = await sales_repo.create_sale(pool, key, spec, 600)
        assert (again, existed) == (sale, True)
        with pytest.raises(sales_repo.IdempotencyKeyReused):
            await sales_repo.create_sale(pool, key, spec, 601)
    finally:
        await pool.close()
