"""Demo data for scripts/server: one running flash sale, a small generated catalog
(devtools/catalog_gen.py, DEMO_PRODUCTS products) and, in dev, an admin account
(config.DEV_ADMIN_EMAIL / DEV_ADMIN_PASSWORD), created once (idempotent)."""

from __future__ import annotations

import time

import asyncpg

from devtools import catalog_gen
from nexuscart import config
from nexuscart.adapters import redis_conn, sales_repo
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.domain.flash_sale import SaleSpec
from services.accounts.admin import create_admin

DEMO_KEY = "demo-seed-flash-sale-v1"


async def seed(settings: config.Settings) -> None:
    now = int(time.time() * 1000)
    spec = SaleSpec(
        sku="DEMO-SNEAKER-42",
        units=1000,
        price_cents=12_900,
        starts_at_ms=now,
        ends_at_ms=now + 7 * 86_400_000,
        per_user_limit=2,
    )
    pool = await asyncpg.create_pool(settings.postgres.dsn, min_size=1, max_size=1)
    client = redis_conn.connect(settings.redis)
    try:
        # The same key every run: a later run finds the first sale (its window was fixed
        # then, so the request differs now: look the key up rather than replay it).
        sale = await sales_repo.sale_by_create_key(pool, DEMO_KEY)
        if sale is None:
            sale, _ = await sales_repo.create_sale(pool, DEMO_KEY, spec, settings.sale.hold_ttl_s)
        store = FlashSaleStore(client)
        if await store.stock(sale.sale_id) is None:
            await store.upsert(sale)
    finally:
        await pool.close()
        await client.aclose()
    # the generator skips what is there: a re-run adds nothing
    await catalog_gen.load(settings.postgres.dsn, settings.redis.url, catalog_gen.DEMO_PRODUCTS)
    if settings.app.environment == "dev":
        # the dev admin's password is public: never outside dev (create-admin refuses it too)
        await create_admin(settings, config.DEV_ADMIN_EMAIL, config.DEV_ADMIN_PASSWORD, "Dev admin")
