"""Payments outbox relay: the rows of PostgreSQL's ``payments_outbox`` (payments.v1 events,
written in the transaction of the payment's change) to Kafka, keyed by user id (see
pg_outbox)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from nexuscart.adapters.payments_repo import OutboxRow, PaymentsRepo
from services.outbox_relay.pg_outbox import BATCH, IDLE_S, PgOutboxRelay


class PaymentsOutboxRelay(PgOutboxRelay[OutboxRow]):
    def __init__(
        self,
        repo: PaymentsRepo,
        producer: AIOKafkaProducer,
        batch: int = BATCH,
        idle_s: float = IDLE_S,
    ):
        super().__init__(repo, producer, lambda r: r.user_id, "payments", batch, idle_s)
        self.repo = repo
