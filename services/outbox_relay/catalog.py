"""Catalog outbox relay: the rows of PostgreSQL's ``catalog_outbox`` (product and stock
events on catalog.v1, written in the transaction of the change) to Kafka, keyed by product
id (see pg_outbox).

Before a batch goes to Kafka the relay also completes the Redis side of each change, which
the writing edge worker does right after its commit but could not if it died or lost Redis
in between: each SKU's stock level (``cat_stock_set``: a newer version only) and the
product id on the change stream every edge worker's page cache follows. So a committed
change reaches Redis at least once, within the relay's poll interval, whatever happened to
its writer (docs/catalog.md). While Redis is down the batch waits (nothing is sent, so
Kafka gets no repeats of it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec
from aiokafka import AIOKafkaProducer

from nexuscart import events
from nexuscart.adapters.catalog_repo import CatalogRepo, OutboxRow
from nexuscart.adapters.catalog_store import CatalogStore, StockLevel
from services.outbox_relay.pg_outbox import BATCH, IDLE_S, PgOutboxRelay

log = logging.getLogger("nexuscart.relay.catalog")


class CatalogOutboxRelay(PgOutboxRelay[OutboxRow]):
    def __init__(
        self,
        repo: CatalogRepo,
        producer: AIOKafkaProducer,
        store: CatalogStore | None = None,
        batch: int = BATCH,
        idle_s: float = IDLE_S,
    ):
        super().__init__(repo, producer, lambda r: r.key, "catalog", batch, idle_s)
        self.repo = repo
        self.store = store

    async def before_send(self, rows: Sequence[OutboxRow]) -> None:
        if self.store is None:
            return
        levels: dict[str, StockLevel] = {}
        products: dict[int, None] = {}  # in order, once each
        for r in rows:
            products[r.key] = None
            try:
                data = events.decode_catalog(r.payload).data
            except msgspec.DecodeError:
                log.warning("undecodable catalog outbox row %s", r.event_id)
                continue
            if isinstance(data, events.StockAdjusted):
                have = levels.get(data.sku)
                if have is None or have.version < data.stock_version:
                    levels[data.sku] = StockLevel(
                        data.stock_version, data.stock_after, data.low_stock_threshold
                    )
        if levels:
            await self.store.set_levels(levels.items())
        for product_id in products:
            await self.store.publish_changed(product_id)
