"""Users outbox relay: the rows of PostgreSQL's ``users_outbox`` (UserRegistered, written in
the transaction that created the user) to Kafka, keyed by user id (see pg_outbox)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from nexuscart.adapters.users_repo import OutboxRow, UsersRepo
from services.outbox_relay.pg_outbox import BATCH, IDLE_S, PgOutboxRelay

__all__ = ["BATCH", "IDLE_S", "UsersOutboxRelay"]


class UsersOutboxRelay(PgOutboxRelay[OutboxRow]):
    def __init__(
        self,
        repo: UsersRepo,
        producer: AIOKafkaProducer,
        batch: int = BATCH,
        idle_s: float = IDLE_S,
    ):
        super().__init__(repo, producer, lambda r: r.user_id, "users", batch, idle_s)
        self.repo = repo
