"""Composition root of the inventory service: the expirer of holds and everyday
reservations, the payments consumer that confirms paid ones (and puts a refunded everyday
order's units back), and the reconcile command."""

from __future__ import annotations

import asyncio
import logging
import sys

import msgspec
from redis.exceptions import RedisError

from nexuscart import config, events, observability
from nexuscart.adapters import postgres, redis_conn
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.adapters.reservations import ReservationStore
from services.inventory.holds import expire_due, expire_reservations, reconcile
from services.inventory.payments import PaymentConfirmer
from services.runtime import consume, sleep_or_stop

log = logging.getLogger("nexuscart.inventory")
EXPIRY_INTERVAL_S = 0.25  # holds are released at most this long after they expire
CONSERVATION_EVERY_S = 15.0  # the oversell alert's check (Redis only: one read per sale)


async def expire_holds(
    store: FlashSaleStore, reservations: ReservationStore, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            n = await expire_due(store) + await expire_reservations(reservations)
            if n:
                observability.HOLDS_EXPIRED.inc(n)
                log.info("released %d units from expired holds", n)
        except (RedisError, OSError):
            log.warning("redis unavailable; expiry retries")
        await sleep_or_stop(stop, EXPIRY_INTERVAL_S)


async def check_conservation(store: FlashSaleStore, stop: asyncio.Event) -> None:
    """Publish how many sales break conservation (the oversell alert's gauge)."""
    while not stop.is_set():
        try:
            reports = await reconcile(store, None)
            observability.CONSERVATION_BROKEN.set(sum(not r.redis_ok for r in reports))
            observability.CONSERVATION_CHECKED.set_to_current_time()
        except (RedisError, OSError):
            log.warning("redis unavailable; conservation check retries")
        await sleep_or_stop(stop, CONSERVATION_EVERY_S)


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    client = redis_conn.connect(settings.redis, timeout_s=5.0)
    # confirms and releases on one pipelined connection: a batch's concurrent calls go out a
    # loop tick at a time (services/inventory/payments.py)
    pipe = RedisPipe(settings.redis.url, timeout_s=5.0)
    store = FlashSaleStore(client, pipe)
    reservations = ReservationStore(client, pipe=pipe)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(expire_holds(store, reservations, stop))
            tasks.create_task(check_conservation(store, stop))
            tasks.create_task(
                consume(
                    settings,
                    "inventory",
                    # orders.v1: the refunded everyday orders whose units go back
                    [events.PAYMENTS_TOPIC, events.ORDERS_TOPIC],
                    PaymentConfirmer(store, reservations).handle,
                    stop,
                )
            )
    finally:
        pipe.close()
        await client.aclose()


async def reconcile_main(with_pg: bool = True) -> int:
    """Print one JSON line per sale; exit 1 when any sale breaks conservation."""
    settings = config.load()
    client = redis_conn.connect(settings.redis, timeout_s=5.0)
    pool = await postgres.create_pool(settings.postgres) if with_pg else None
    try:
        reports = await reconcile(FlashSaleStore(client), pool)
    finally:
        await client.aclose()
        if pool is not None:
            await pool.close()
    bad = 0
    for r in reports:
        sys.stdout.write(msgspec.json.encode(r).decode() + "\n")
        bad += (not r.redis_ok) or (r.pg_ok is False)
    return 1 if bad else 0
