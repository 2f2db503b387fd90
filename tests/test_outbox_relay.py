"""The outbox relay takes over what another relay holds: every page of every stream, after a
bounded idle time, with two real relay processes, one of them killed with SIGKILL while it
holds entries, relaying into real Kafka (real Redis, real Kafka)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from devtools import devstack
from devtools.proc import Process
from nexuscart import config, events
from nexuscart.adapters import kafka
from nexuscart.adapters.flash_sales import OUTBOX_GROUP, FlashSaleStore
from services.outbox_relay.relay import OutboxRelay
from services.runtime import consumer_name
from tests.test_flash_sale_store import buy, new_sale

ROOT = Path(__file__).resolve().parent.parent


async def until(predicate: Callable[[], Awaitable[bool]], within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def event_ids_on(settings: config.Settings, topic: str, want: set[str]) -> set[str]:
    """The event ids on ``topic``, read from the start until ``want`` are all seen (or a
    minute passed)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    try:
        while not want <= seen and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    with contextlib.suppress(msgspec.DecodeError):  # another test's poison
                        seen.add(str(events.decode(r.value).id))
    finally:
        await consumer.stop()
    return seen


async def stream_ids(store: FlashSaleStore, stream: bytes) -> set[str]:
    raw: Any = await store.client.xrange(stream)
    return {str(events.decode(f[b"e"]).id) for _, f in raw}


async def drained(store: FlashSaleStore, stream: bytes) -> bool:
    pending: Any = await store.client.xpending(stream, OUTBOX_GROUP)
    return int(await store.client.xlen(stream)) == 0 and int(pending["pending"]) == 0


def test_each_relay_process_gets_its_own_consumer_name() -> None:
    assert consumer_name() != consumer_name()
    assert consumer_name().split("-")[-2] == str(os.getpid())


async def test_a_relay_claims_every_page_of_every_stream_held_by_a_dead_consumer(
    settings: config.Settings, store: FlashSaleStore
) -> None:
    topic = f"relay-test-{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(settings.kafka.bootstrap, [topic])
    sales = [new_sale(units=30, limit=1) for _ in range(2)]
    streams = [store.keys(s.sale_id).outbox for s in sales]
    for sale in sales:
        await store.upsert(sale)
        await store.join_outbox(store.keys(sale.sale_id).outbox)
        await asyncio.gather(*(buy(store, sale, user=u) for u in range(23)))
    want = set().union(*[await stream_ids(store, s) for s in streams])
    assert len(want) == 46
    # a relay that read everything and died before sending any of it
    held = await store.read_outbox("dead-relay", streams, count=1000, block_ms=None)
    assert len(held) == 46
    producer = kafka.producer(settings.kafka, "relay-test")
    await producer.start()
    try:
        relay = OutboxRelay(store, producer, consumer_name(), topic=topic, batch=5)
        relay.streams = set(streams)
        relay.claim_idle_ms = 0  # the dead relay's entries count as stale at once
        # 46 entries, 5 a page: one call takes over every page of both streams
        assert await relay.take_over() == 46
    finally:
        await producer.stop()
    for s in streams:
        assert await drained(store, s)
        names = [c.name for c in await store.outbox_consumers(s)]
        assert "dead-relay" not in names  # held nothing any more, idle: deleted
    assert want <= await event_ids_on(settings, topic, want)


async def test_a_consumer_that_still_holds_entries_is_not_deleted(store: FlashSaleStore) -> None:
    sale = new_sale(units=3, limit=1)
    await store.upsert(sale)
    stream = store.keys(sale.sale_id).outbox
    await store.join_outbox(stream)
    await buy(store, sale, user=1)
    assert len(await store.read_outbox("busy-relay", [stream], count=10, block_ms=None)) == 1
    consumers = await store.outbox_consumers(stream)
    assert await store.drop_idle_outbox_consumers(stream, consumers, "other", 0) == []
    assert [c.pending for c in await store.outbox_consumers(stream)] == [1]


@pytest.fixture
def relays(stack: devstack.Stack) -> Iterator[list[Process]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "RELAY_CLAIM_IDLE_MS": "1000",
    }
    procs = [
        Process(
            f"relay-{n}",
            [sys.executable, "-m", "services.outbox_relay"],
            cwd=ROOT,
            env=env,
            log=stack.workdir / f"relay-{n}.log",
        ).start()
        for n in ("a", "b")
    ]
    yield procs
    for p in procs:
        p.stop()


async def test_entries_held_by_a_relay_killed_with_sigkill_reach_kafka_through_the_other(
    stack: devstack.Stack,
    settings: config.Settings,
    store: FlashSaleStore,
    relays: list[Process],
) -> None:
    await kafka.ensure_topics(settings.kafka.bootstrap, [events.ORDERS_TOPIC])
    sale = new_sale(units=40, limit=1)
    await store.upsert(sale)
    stream = store.keys(sale.sale_id).outbox

    async def both_relaying() -> bool:
        return all(
            p.log is not None and p.log.exists() and b"relaying as consumer" in p.log.read_bytes()
            for p in relays
        )

    await until(both_relaying)  # connected to Redis and Kafka
    kafka_proc = stack.servers["kafka"].process
    assert kafka_proc is not None
    # Kafka paused: whichever relay reads the entries holds them, unacknowledged
    os.killpg(kafka_proc.pgid, signal.SIGSTOP)
    try:
        await asyncio.gather(*(buy(store, sale, user=u) for u in range(40)))
        want = await stream_ids(store, stream)
        assert len(want) == 40

        async def all_held() -> bool:
            return sum(c.pending for c in await store.outbox_consumers(stream)) == 40

        await until(all_held)
        holder = max(await store.outbox_consumers(stream), key=lambda c: c.pending)
        assert holder.pending > 0
        pid = int(holder.name.rsplit("-", 2)[1])  # consumer names are host-pid-random
        victim = next(p for p in relays if p.pid == pid)
        victim.kill()  # SIGKILL while holding entries
    finally:
        os.killpg(kafka_proc.pgid, signal.SIGCONT)
    survivor = next(p for p in relays if p is not victim)

    async def stream_empty() -> bool:
        return await drained(store, stream)

    await until(stream_empty, within_s=90)
    assert want <= await event_ids_on(settings, events.ORDERS_TOPIC, want)

    async def dead_consumer_gone() -> bool:
        return all(c.name != holder.name for c in await store.outbox_consumers(stream))

    await until(dead_consumer_gone)
    assert survivor.running
