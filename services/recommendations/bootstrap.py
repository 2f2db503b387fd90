"""Composition root of the recommendation service: the consumer that keeps the live
signals in Redis (orders.v1, catalog.v1, interactions.v1), the product backfill at start,
the scheduled training (every RECS_TRAIN_INTERVAL_S, schedule.py) and, with
RECS_DEMO_MODEL (scripts/server with its demo data), a SYNTHETIC demo model when none is
active."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import numpy as np

from nexuscart import config, tasks
from nexuscart.adapters import postgres, redis_conn
from nexuscart.adapters.catalog_repo import CatalogRepo
from nexuscart.adapters.recs_registry import ModelRegistry
from nexuscart.adapters.recs_store import ExperimentStore, Item, RecsStore
from nexuscart.app.recommendations import TOPICS, RecsSignals, decode
from nexuscart.domain import recs as rules
from services.recommendations.schedule import TrainingScheduler
from services.runtime import consume

log = logging.getLogger("nexuscart.recommendations")
DEMO_INTERACTIONS = 150_000


async def backfill(repo: CatalogRepo, store: RecsStore, consumable: frozenset[int]) -> int:
    """Every product's category, status and SKUs into recs:item (products loaded without a
    catalog.v1 event, such as the generated demo catalog, would otherwise never be
    served); catalog.v1 keeps them current after."""
    n = 0
    async for page in repo.iter_products():
        await store.put_items([
            Item(p.product_id, p.category_id, p.status, [v.sku for v in p.variants],
                 p.category_id in consumable)
            for p in page
        ])  # fmt: skip
        n += len(page)
    return n


def _train_demo(registry: ModelRegistry) -> str:
    # the generators are development tools (not in the runtime image): the local stack only
    from devtools import catalog_gen
    from services.recommendations import model as m
    from services.recommendations import train

    cfg = m.Config(threads=1)
    mdl, cat, product_ids, info = train.fit(DEMO_INTERACTIONS, catalog_gen.DEMO_PRODUCTS, 7, cfg)
    arrays = m.to_arrays(mdl, cat, product_ids, np.arange(1, info["users"] + 1))
    meta = {"metrics": mdl.metrics, "timings_s": mdl.timer.stages, "data": info}
    return registry.save(arrays, m.ranker_bytes(mdl.ranker), meta)


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    redis = redis_conn.connect(settings.redis)
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> asyncpg.Pool:
        return pool

    try:
        repo = CatalogRepo(pg)
        store = RecsStore(redis, settings.recs.log_maxlen)
        # consumables come back after a purchase (a refill); the tree changes rarely, and a
        # restart picks up a new department
        tree = await repo.categories()
        consumable = rules.consumable_categories((c.category_id, c.parent_id, c.name) for c in tree)
        log.info("recommendations: %d products backfilled", await backfill(repo, store, consumable))
        registry = ModelRegistry(settings.recs.model_dir, redis)
        if settings.recs.demo_model and await registry.active() is None:
            version = await asyncio.to_thread(_train_demo, registry)
            await registry.promote(version)
            log.info("recommendations: SYNTHETIC demo model %s trained and promoted", version)
        signals = RecsSignals(store, consumable, ExperimentStore(redis))
        training = None
        if settings.recs.train_interval_s:
            scheduler = TrainingScheduler(registry, settings.recs.train_interval_s)
            training = asyncio.ensure_future(scheduler.run(stop))
        try:
            await consume(settings, "recommendations", TOPICS, signals.handle, stop, decode=decode)
        finally:
            if training is not None and stop.is_set():
                await training  # it ends by itself on stop, its child killed
            elif training is not None:
                await tasks.stop(training)  # the consumer failed: cancelled, child killed too
    finally:
        await pool.close()
        await redis.aclose()
