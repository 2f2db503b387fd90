"""The consumer loop every service uses (services.runtime.ConsumerLoop), on the real stack:
poison records go to the dead-letter topic and the rest is applied; transient failures
(an injected serialization failure, PostgreSQL restarted) are retried, applied once, and
never crash the loop; a batch that fails for good is split so only the poison is parked."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from devtools import devstack
from nexuscart import config, events
from nexuscart.adapters import kafka, postgres
from services.orders.projector import OrdersProjector
from services.runtime import ConsumerLoop, is_transient
from tests.envelopes import encode, envelope
from tests.test_flash_sale_pipeline import Service

# Failures are injected with triggers, or by restarting the stack's own PostgreSQL: that
# needs the server the test stack starts (Citus refuses triggers on distributed and
# reference tables; with PG_DSN given, no server is started).
needs_own_postgres = pytest.mark.skipif(
    bool(os.environ.get("PG_DSN")), reason="needs the test stack's own PostgreSQL"
)

ORDERS_DLQ = events.dead_letter_topic(events.ORDERS_TOPIC)

_order_seq = iter(range(1, 1 << 24))
SALE_ID = 900_001


def reserved(user_id: int) -> events.Envelope:
    seq = next(_order_seq)
    return envelope(
        events.StockReserved(
            order_id=(SALE_ID << 24) | seq,
            sale_id=SALE_ID,
            user_id=user_id,
            sku="SKU-DLQ",
            quantity=1,
            unit_price_cents=500,
            currency="usd",
            expires_at_ms=int(time.time() * 1000) + 600_000,
        ),
        key=user_id,
    )


async def _until(predicate: Callable[[], Awaitable[bool]], within_s: float = 90.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached in time")


async def _produce(
    settings: config.Settings, topic: str, records: list[tuple[bytes, bytes]]
) -> list[int]:
    """Send (key, value) records in order; their offsets."""
    producer = kafka.producer(settings.kafka, "test-consumer-loop")
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, value=v, key=k)).offset for k, v in records]
    finally:
        await producer.stop()


async def _read_all(
    settings: config.Settings, topic: str, n: int
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while len(got) < n and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(recs)
    finally:
        await consumer.stop()
    return got


async def _orders(dsn: str, order_ids: list[int]) -> dict[int, tuple[str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT o.order_id, o.status, count(i.*) AS items FROM orders o"
            " LEFT JOIN order_items i USING (user_id, order_id)"
            " WHERE o.order_id = ANY($1::bigint[]) GROUP BY o.order_id, o.status",
            order_ids,
        )
    finally:
        await conn.close()
    return {r["order_id"]: (r["status"], r["items"]) for r in rows}


def _headers(rec: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {k: v.decode() for k, v in rec.headers}


# --- the orders service itself, poison records on its real topic ----------------------------


async def test_undecodable_events_go_to_the_dead_letter_topic_and_later_events_are_applied(
    stack: devstack.Stack, settings: config.Settings, migrated: None
) -> None:
    user = 4_242_001
    good = reserved(user)
    # what the Lua scripts wrote before ids were exact: user_id as a float
    floaty = encode(reserved(user)).replace(
        f'"user_id":{user}'.encode(), f'"user_id":{float(user * 10**8):.13e}'.encode()
    )
    assert b"e+" in floaty
    key = str(user).encode()
    await kafka.ensure_topics(settings.kafka.bootstrap, [events.ORDERS_TOPIC, ORDERS_DLQ])
    offsets = await _produce(
        settings,
        events.ORDERS_TOPIC,
        [(key, b"not json {"), (key, floaty), (key, encode(good))],
    )
    orders = Service("orders", stack.workdir)
    orders.start()
    try:

        async def applied() -> bool:
            return good.data.order_id in await _orders(settings.postgres.dsn, [good.data.order_id])

        await _until(applied)
        dead = await _read_all(settings, ORDERS_DLQ, 2)
    finally:
        orders.stop()
    mine = [
        r
        for r in dead
        if r.key == key and _headers(r)["dlq.source.offset"] in map(str, offsets[:2])
    ]
    assert [r.value for r in mine] == [b"not json {", floaty]
    for rec in mine:
        h = _headers(rec)
        assert h["dlq.source.topic"] == events.ORDERS_TOPIC
        assert h["dlq.consumer"] == "orders"
        assert "DecodeError" in h["dlq.error"] or "ValidationError" in h["dlq.error"]
        assert rec.key == key
    assert "dead_lettered_total=2" in orders.log.read_text()


# --- the loop in-process, with failures injected by a trigger -------------------------------


class Harness:
    """A ConsumerLoop with the real OrdersProjector on a fresh topic, run as a task."""

    def __init__(self, settings: config.Settings, pool: asyncpg.Pool, topic: str):
        self.settings = settings
        self.topic = topic
        self.projector = OrdersProjector(pool)
        self.consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka.bootstrap,
            group_id=f"test-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.producer = kafka.producer(settings.kafka, "test-dlq")
        self.loop = ConsumerLoop(
            "test-orders", self.consumer, self.producer, self.projector.handle, max_backoff_s=0.5
        )
        self.stop = asyncio.Event()

    async def __aenter__(self) -> Harness:
        await kafka.ensure_topics(
            self.settings.kafka.bootstrap, [self.topic, events.dead_letter_topic(self.topic)]
        )
        await self.producer.start()
        await self.consumer.start()
        self.task = asyncio.create_task(self.loop.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        try:
            await self.task  # the loop never died: it returns cleanly on stop
        finally:
            await self.consumer.stop()
            await self.producer.stop()


@pytest.fixture
async def pool(settings: config.Settings, migrated: None) -> AsyncIterator[asyncpg.Pool]:
    p = await postgres.create_pool(settings.postgres, timeout_s=10.0)
    yield p
    await p.close()


@pytest.fixture
async def inject(pool: asyncpg.Pool) -> AsyncIterator[Callable[[str, str, int], Awaitable[str]]]:
    """inject(condition on NEW, sqlstate, times): the next ``times`` inbox inserts matching
    the condition raise that SQLSTATE. Counted by a sequence (not rolled back with the
    failing transaction); returns the sequence's name."""
    names: list[str] = []

    async def add(condition: str, sqlstate: str, times: int) -> str:
        name = f"test_fail_{uuid.uuid4().hex[:8]}"
        names.append(name)
        await pool.execute(f"""
            CREATE SEQUENCE {name};
            CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF ({condition}) AND nextval('{name}') <= {times} THEN
                    RAISE EXCEPTION 'injected failure' USING ERRCODE = '{sqlstate}';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER {name} BEFORE INSERT ON inbox
                FOR EACH ROW EXECUTE FUNCTION {name}();
        """)  # fmt: skip
        return name

    yield add
    for name in names:
        await pool.execute(
            f"DROP TRIGGER IF EXISTS {name} ON inbox; DROP FUNCTION IF EXISTS {name}();"
        )


async def _fired(pool: asyncpg.Pool, seq: str) -> int:
    row = await pool.fetchrow(f"SELECT last_value, is_called FROM {seq}")
    assert row is not None
    return int(row["last_value"]) if row["is_called"] else 0


async def _inbox_rows(pool: asyncpg.Pool, envs: list[events.Envelope]) -> int:
    n: int = await pool.fetchval(
        "SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])", [e.id for e in envs]
    )
    return n


@needs_own_postgres
@pytest.mark.parametrize(
    "sqlstate",
    [
        "40001",  # serialization_failure
        "57P01",  # admin_shutdown: the server restarting
        "42883",  # undefined_function: a statement the server refuses (Citus' CASE bug)
    ],
)
async def test_a_statement_failing_once_is_retried_and_applied_once(
    settings: config.Settings, pool: asyncpg.Pool, inject: Any, sqlstate: str
) -> None:
    envs = [reserved(5_000_000 + u) for u in range(20)]
    victim = envs[7].data.user_id
    seq = await inject(f"NEW.user_id = {victim}", sqlstate, 2)
    topic = f"test.orders.{uuid.uuid4().hex[:8]}"
    async with Harness(settings, pool, topic) as h:
        await _produce(settings, topic, [(e.key.encode(), encode(e)) for e in envs])

        async def all_applied() -> bool:
            got = await _orders(settings.postgres.dsn, [e.data.order_id for e in envs])
            return len(got) == len(envs)

        await _until(all_applied)
    assert await _fired(pool, seq) >= 1
    assert h.loop.retries >= 1
    assert h.loop.dead_lettered == 0
    got = await _orders(settings.postgres.dsn, [e.data.order_id for e in envs])
    assert set(got.values()) == {("PENDING_PAYMENT", 1)}
    assert await _inbox_rows(pool, envs) == len(envs)


@needs_own_postgres
async def test_a_failing_event_is_isolated_and_dead_lettered_while_its_batch_is_applied(
    settings: config.Settings, pool: asyncpg.Pool, inject: Any
) -> None:
    # one user's events stay in one shard group: the poison fails its whole group's
    # transaction, so only splitting the batch can apply the healthy events of that user
    user = 6_000_001
    envs = [reserved(user) for _ in range(9)] + [reserved(6_000_100 + u) for u in range(20)]
    poison = envs[4]
    await inject(f"NEW.event_id = '{poison.id}'", "23514", 1_000_000)  # check_violation
    topic = f"test.orders.{uuid.uuid4().hex[:8]}"
    healthy = [e for e in envs if e is not poison]
    async with Harness(settings, pool, topic) as h:
        offsets = await _produce(settings, topic, [(e.key.encode(), encode(e)) for e in envs])

        async def settled() -> bool:
            got = await _orders(settings.postgres.dsn, [e.data.order_id for e in healthy])
            return len(got) == len(healthy) and h.loop.dead_lettered >= 1

        await _until(settled)
    assert h.loop.dead_lettered == 1
    dead = await _read_all(settings, events.dead_letter_topic(topic), 1)
    assert [r.value for r in dead] == [encode(poison)]
    hdr = _headers(dead[0])
    assert hdr["dlq.source.topic"] == topic
    assert hdr["dlq.source.offset"] == str(offsets[4])
    assert "CheckViolationError" in hdr["dlq.error"]
    assert poison.data.order_id not in await _orders(settings.postgres.dsn, [poison.data.order_id])
    assert await _inbox_rows(pool, healthy) == len(healthy)


@needs_own_postgres
async def test_postgres_restarted_under_the_loop_is_retried_without_a_crash(
    stack: devstack.Stack, settings: config.Settings, pool: asyncpg.Pool
) -> None:
    envs = [reserved(7_000_000 + u) for u in range(10)]
    topic = f"test.orders.{uuid.uuid4().hex[:8]}"
    pg = stack.servers["postgres"]
    async with Harness(settings, pool, topic) as h:
        await asyncio.to_thread(pg.stop)
        try:
            await _produce(settings, topic, [(e.key.encode(), encode(e)) for e in envs])

            async def retrying() -> bool:
                return h.loop.retries >= 2

            await _until(retrying)
        finally:
            await asyncio.to_thread(pg.start)

        async def all_applied() -> bool:
            got = await _orders(settings.postgres.dsn, [e.data.order_id for e in envs])
            return len(got) == len(envs)

        await _until(all_applied)
        assert not h.task.done()
    assert h.loop.dead_lettered == 0
    got = await _orders(settings.postgres.dsn, [e.data.order_id for e in envs])
    assert set(got.values()) == {("PENDING_PAYMENT", 1)}


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (asyncpg.SerializationError("x"), True),
        (asyncpg.DeadlockDetectedError("x"), True),
        (asyncpg.CannotConnectNowError("x"), True),
        (asyncpg.AdminShutdownError("x"), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        # the statement or schema is wrong for every event: wait for the fix, park nothing
        (asyncpg.UndefinedFunctionError("x"), True),
        (asyncpg.UndefinedTableError("x"), True),
        (asyncpg.CheckViolationError("x"), False),
        (asyncpg.NumericValueOutOfRangeError("x"), False),
        (asyncpg.RaiseError("x"), False),
        (ValueError("bad data"), False),
    ],
)
def test_transient_errors_are_told_from_permanent_ones(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


async def test_offsets_are_committed_when_the_records_stop_and_never_past_an_unapplied_one(
    settings: config.Settings,
) -> None:
    """Commits are spaced (``commit_every_s``) but never late for good: the applied records'
    offsets are committed once the records stop coming, and a stop while a batch cannot
    apply commits only what was applied before it."""
    topic = f"test.commits.{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(settings.kafka.bootstrap, [topic, events.dead_letter_topic(topic)])
    first = [reserved(8_000_001) for _ in range(5)]
    stuck = [reserved(8_000_001) for _ in range(3)]  # one key: one partition
    blocked = {e.id for e in stuck}
    applied: list[events.Envelope] = []

    async def handle(batch: list[events.Envelope]) -> None:
        if any(e.id in blocked for e in batch):
            raise OSError("a dependency that never comes back")  # transient: retried
        applied.extend(batch)

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka.bootstrap, group_id=f"test-{uuid.uuid4().hex}",
        enable_auto_commit=False, auto_offset_reset="earliest",
    )  # fmt: skip
    producer = kafka.producer(settings.kafka, "test-dlq")
    loop = ConsumerLoop("test-commits", consumer, producer, handle, commit_every_s=3600)
    stop = asyncio.Event()
    await producer.start()
    await consumer.start()
    try:
        task = asyncio.create_task(loop.run(stop))
        offsets = await _produce(settings, topic, [(e.key.encode(), encode(e)) for e in first])
        mine: list[TopicPartition] = []

        async def first_committed() -> bool:
            for tp in consumer.assignment():
                if await consumer.committed(tp) == offsets[-1] + 1:
                    mine.append(tp)
                    return True
            return False

        await _until(first_committed, within_s=30)
        assert [e.id for e in applied] == [e.id for e in first]
        await _produce(settings, topic, [(e.key.encode(), encode(e)) for e in stuck])

        async def retrying() -> bool:
            return loop.retries >= 1

        await _until(retrying, within_s=30)
        stop.set()
        await task
        assert await consumer.committed(mine[0]) == offsets[-1] + 1  # not past the stuck
    finally:
        await consumer.stop()
        await producer.stop()
