"""UserRegistered travels from PostgreSQL's users outbox to Kafka (services/outbox_relay/
users.py): once per user, even when a relay dies between Kafka's acknowledgement and the
row's deletion and another relay sends the row again (consumers keep one per event id)
(real PostgreSQL, real Kafka)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from nexuscart import config, events
from nexuscart.adapters import kafka, postgres
from nexuscart.adapters.users_repo import OutboxRow, UsersRepo
from services.outbox_relay.users import UsersOutboxRelay


@pytest.fixture
async def repo(settings: config.Settings, migrated: None) -> AsyncIterator[UsersRepo]:
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> asyncpg.Pool:
        return pool

    yield UsersRepo(pg)
    await pool.close()


async def new_users(repo: UsersRepo, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        uid = await repo.next_id()
        email = f"outbox-{uuid.uuid4().hex}@example.com"
        assert await repo.claim_email(email, uid)
        await repo.create(uid, email, "Outbox", "$argon2id$not-a-real-hash", ("customer",))
        ids.append(uid)
    return ids


async def registrations_on(settings: config.Settings, users: set[int]) -> list[events.UserEnvelope]:
    """Every UserRegistered record of ``users`` on users.v1, read from the start until each
    user has one (or a minute passed), then one more poll for late repeats."""
    consumer = AIOKafkaConsumer(
        events.USERS_TOPIC,
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen: list[events.UserEnvelope] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    with contextlib.suppress(msgspec.DecodeError):
                        env = events.decode_user(r.value)
                        if env.data.user_id in users:
                            assert r.key == str(env.data.user_id).encode()
                            seen.append(env)
            if users <= {e.data.user_id for e in seen}:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for r in records:
                        env = events.decode_user(r.value)
                        if env.data.user_id in users:
                            seen.append(env)
                break
    finally:
        await consumer.stop()
    return seen


class DiesBeforeDeleting(UsersRepo):
    """A relay's repository whose process 'dies' after Kafka acknowledged a batch and
    before the rows are deleted."""

    async def outbox_delete(self, rows: Sequence[OutboxRow]) -> None:
        raise ConnectionResetError("relay died before deleting")


async def test_user_registered_reaches_kafka_once_per_user_across_a_relay_crash(
    settings: config.Settings, repo: UsersRepo
) -> None:
    await kafka.ensure_topics(settings.kafka.bootstrap, [events.USERS_TOPIC])
    users = await new_users(repo, 12)
    producer = kafka.producer(settings.kafka, "test-users-relay")
    await producer.start()
    try:
        dying = UsersOutboxRelay(DiesBeforeDeleting(repo.pool), producer)
        with pytest.raises(ConnectionResetError):
            await dying.run_once()  # sent, acknowledged, not deleted
        relay = UsersOutboxRelay(repo, producer)
        while await relay.run_once():  # the successor sends the rows again, then deletes
            pass
    finally:
        await producer.stop()
    pool = await repo.pool()
    left = await pool.fetchval(
        "SELECT count(*) FROM users_outbox WHERE user_id = ANY($1::bigint[])", users
    )
    assert left == 0
    seen = await registrations_on(settings, set(users))
    per_user = {u: {e.id for e in seen if e.data.user_id == u} for u in users}
    # one event per user (the crash made some records twice: same event id, dropped by id)
    assert all(len(ids) == 1 for ids in per_user.values()), per_user
    assert Counter(e.data.user_id for e in seen).keys() == set(users)
    assert all(e.type == "UserRegistered" and e.key == str(e.data.user_id) for e in seen)


async def test_the_outbox_row_is_written_with_the_user_or_not_at_all(repo: UsersRepo) -> None:
    uid = await repo.next_id()
    email = f"atomic-{uuid.uuid4().hex}@example.com"
    assert await repo.claim_email(email, uid)
    await repo.create(uid, email, "Atomic", "$argon2id$x", ("customer",))
    pool = await repo.pool()
    with pytest.raises(asyncpg.UniqueViolationError):  # the same user again: nothing added
        await repo.create(uid, email, "Atomic", "$argon2id$x", ("customer",))
    n = await pool.fetchval("SELECT count(*) FROM users_outbox WHERE user_id = $1", uid)
    assert n == 1


async def test_an_orphaned_email_claim_is_taken_over_after_a_while(repo: UsersRepo) -> None:
    pool = await repo.pool()
    email = f"orphan-{uuid.uuid4().hex}@example.com"
    dead, fresh = await repo.next_id(), await repo.next_id()
    assert await repo.claim_email(email, dead)  # its registration died before the user row
    assert not await repo.claim_email(email, fresh)  # too recent: maybe still in flight
    await pool.execute(
        "UPDATE user_emails SET claimed_at = now() - interval '1 hour' WHERE email = $1", email
    )
    assert await repo.claim_email(email, fresh)
    assert await repo.id_of_email(email) == fresh


async def test_relay_run_stops_when_told(repo: UsersRepo, settings: config.Settings) -> None:
    producer = kafka.producer(settings.kafka, "test-users-relay-stop")
    await producer.start()
    try:
        stop = asyncio.Event()
        task = asyncio.ensure_future(UsersOutboxRelay(repo, producer).run(stop))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        await producer.stop()
