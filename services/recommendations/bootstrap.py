"""Composition root of the recommendation service: the consumer that keeps the live
signals in Redis (orders.v1, catalog.v1, interactions.v1)."""

from __future__ import annotations

import asyncio

import asyncpg

from nexuscart import config
from nexuscart.adapters import postgres, redis_conn
from nexuscart.adapters.catalog_repo import CatalogRepo
from nexuscart.adapters.recs_store import RecsStore
from nexuscart.app.recommendations import TOPICS, RecsSignals, decode
from nexuscart.domain import recs as rules
from services.runtime import consume


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    redis = redis_conn.connect(settings.redis)
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> asyncpg.Pool:
        return pool

    try:
        # consumables come back after a purchase (a refill); the tree changes rarely, and a
        # restart picks up a new department
        tree = await CatalogRepo(pg).categories()
        consumable = rules.consumable_categories((c.category_id, c.parent_id, c.name) for c in tree)
        signals = RecsSignals(RecsStore(redis, settings.recs.log_maxlen), consumable)
        await consume(settings, "recommendations", TOPICS, signals.handle, stop, decode=decode)
    finally:
        await pool.close()
        await redis.aclose()
