"""Catalog outbox relay: the rows of PostgreSQL's ``catalog_outbox`` (product and stock
events on catalog.v1, written in the transaction of the change) to Kafka, keyed by product
id (see pg_outbox)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from nexuscart.adapters.catalog_repo import CatalogRepo, OutboxRow
from services.outbox_relay.pg_outbox import BATCH, IDLE_S, PgOutboxRelay


class CatalogOutboxRelay(PgOutboxRelay[OutboxRow]):
    def __init__(
        self,
        repo: CatalogRepo,
        producer: AIOKafkaProducer,
        batch: int = BATCH,
        idle_s: float = IDLE_S,
    ):
        super().__init__(repo, producer, lambda r: r.key, "catalog", batch, idle_s)
        self.repo = repo
