"""Composition root of the recommendation service: the consumer that keeps the live
signals in Redis (orders.v1, catalog.v1, interactions.v1)."""

from __future__ import annotations

import asyncio

from nexuscart import config
from nexuscart.adapters import redis_conn
from nexuscart.adapters.recs_store import RecsStore
from nexuscart.app.recommendations import TOPICS, RecsSignals, decode
from services.runtime import consume


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    redis = redis_conn.connect(settings.redis)
    signals = RecsSignals(RecsStore(redis, settings.recs.log_maxlen))
    try:
        await consume(settings, "recommendations", TOPICS, signals.handle, stop, decode=decode)
    finally:
        await redis.aclose()
