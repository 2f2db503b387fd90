"""Each real part of the stack answers a real round trip."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from devtools import devstack
from nexuscart import config
from nexuscart.adapters import kafka
from tests.conftest import EdgeServer


async def test_redis_lua_script_round_trip_by_evalsha(redis_client: aioredis.Redis) -> None:
    sha = await redis_client.script_load("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    key = f"smoke:{uuid.uuid4()}"
    assert await redis_client.evalsha(sha, 1, key, 5) == 5
    assert await redis_client.evalsha(sha, 1, key, 2) == 7


async def test_postgres_query_over_asyncpg(settings: config.Settings) -> None:
    conn = await asyncpg.connect(settings.postgres.dsn)
    try:
        assert await conn.fetchval("SELECT 40 + $1::int", 2) == 42
    finally:
        await conn.close()


async def test_kafka_idempotent_produce_then_consume(settings: config.Settings) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    producer = kafka.producer(settings.kafka, "smoke")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        group_id=f"g-{topic}",
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert (msg.value, msg.key, msg.partition, msg.offset) == (
        b"hello",
        b"k1",
        meta.partition,
        meta.offset,
    )


def test_stripe_payment_intent_via_sdk_against_stripe_mock(settings: config.Settings) -> None:
    import stripe

    client = stripe.StripeClient(
        settings.stripe.api_key,
        base_addresses={"api": settings.stripe.api_base or ""},
        max_network_retries=0,
    )
    intent = client.v1.payment_intents.create(params={"amount": 1999, "currency": "usd"})
    assert intent.object == "payment_intent"
    assert intent.amount == 1999


def test_readyz_goes_503_when_redis_stops_and_back_to_200(
    stack: devstack.Stack, edge: EdgeServer
) -> None:
    deadline = time.monotonic() + 10  # each worker is ready once its first probes answered
    while httpx.get(f"{edge.url}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    redis_server = stack.servers["redis"]
    redis_server.stop()
    try:
        # /readyz answers from background probes: the failure shows within about a second
        deadline = time.monotonic() + 10
        resp = httpx.get(f"{edge.url}/readyz", timeout=10)
        while resp.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            resp = httpx.get(f"{edge.url}/readyz", timeout=10)
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "1"
        body = resp.json()
        assert body["checks"]["redis"].startswith("down")
        assert body["checks"]["postgres"] == "ok"
        assert body["checks"]["kafka"] == "ok"
    finally:
        redis_server.start()
    # Each worker's pool holds connections the restart broke; they reconnect on next use, so
    # readiness returns within a couple of probes rather than on the very first one.
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        resp = httpx.get(f"{edge.url}/readyz", timeout=10)
        seen.append((resp.status_code, resp.text))
        if resp.status_code == 200:
            break
        time.sleep(0.2)
    assert seen[-1][0] == 200, seen
