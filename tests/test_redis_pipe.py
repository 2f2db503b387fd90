"""The lean pipelined Redis connection: order, errors, deadlines, reconnects (real Redis)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import signal
import time
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from devtools import devstack
from nexuscart import config
from nexuscart.adapters import redis_conn
from nexuscart.adapters.key_mirror import KeyMirror
from nexuscart.adapters.redis_pipe import RedisPipe, RedisPipeError, ReplyError
from tests.conftest import EdgeServer
from tests.test_flash_sale_http import buyer_headers, create_sale


async def test_replies_come_back_in_order_with_errors_in_place(settings: config.Settings) -> None:
    pipe = RedisPipe(settings.redis.url)
    try:
        out = await pipe.execute(
            [("SET", "pipe:a", "1"), ("INCR", "pipe:a"), ("HGET", "pipe:a", "x"), ("GET", "pipe:a")]
        )
        assert out[:2] == [b"OK", 2]
        assert isinstance(out[2], ReplyError)  # WRONGTYPE, answered in its place
        assert out[3] == b"2"
        many = await asyncio.gather(*(pipe.execute([("ECHO", str(i))]) for i in range(500)))
        assert [m[0] for m in many] == [str(i).encode() for i in range(500)]
    finally:
        pipe.close()


async def test_a_redis_that_stops_answering_fails_within_the_deadline_then_recovers(
    stack: devstack.Stack, settings: config.Settings
) -> None:
    pipe = RedisPipe(settings.redis.url, timeout_s=0.5)
    proc = stack.servers["redis"].process
    assert proc is not None
    try:
        assert await pipe.execute([("PING",)]) == [b"PONG"]
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(RedisPipeError):
                await pipe.execute([("PING",)])
            assert time.monotonic() - t0 < 2.0
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert await pipe.execute([("PING",)]) == [b"PONG"]  # reconnected
    finally:
        pipe.close()


def test_purchase_answers_503_with_retry_after_while_redis_is_down_and_works_after(
    stack: devstack.Stack, edge: EdgeServer
) -> None:
    sale = create_sale(edge, units=5)
    url = f"{edge.url}/flash-sales/{sale['sale_id']}/purchase"
    redis_server = stack.servers["redis"]
    redis_server.stop()
    try:
        r = httpx.post(url, json={"quantity": 1}, headers=buyer_headers(31337), timeout=10)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json()["type"] == "/problems/dependency-unavailable"
    finally:
        redis_server.start()
    # Redis restarted from its AOF without the script cache: NOSCRIPT is handled.
    r = httpx.post(url, json={"quantity": 1}, headers=buyer_headers(31338), timeout=10)
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("tracking", [False, True], ids=["resp2", "resp3-tracking"])
async def test_the_purchase_connection_authenticates_with_the_url_credentials(
    settings: config.Settings, redis_client: aioredis.Redis, tracking: bool
) -> None:
    # Regression: the store rebuilt the pipe's URL from host/port/db and dropped the
    # username and password, so the purchase path failed against a Redis with ACLs. A
    # tracking pipe (the catalog's, ADR 0019) authenticates in its HELLO 3.
    await redis_client.acl_setuser(
        "buyer-edge", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"]
    )
    host_port = settings.redis.url.split("://", 1)[1].rsplit("/", 1)[0]
    m = KeyMirror(10)
    track = (m.invalidate, m.reset) if tracking else None
    good = RedisPipe(f"redis://buyer-edge:s3cret@{host_port}/0", tracking=track)
    bad = RedisPipe(f"redis://buyer-edge:wrong@{host_port}/0", tracking=track)
    try:
        assert await good.execute([("ACL", "WHOAMI")]) == [b"buyer-edge"]
        with pytest.raises(ReplyError, match="WRONGPASS"):
            await bad.execute([("PING",)])
    finally:
        good.close()
        bad.close()
        await redis_client.acl_deluser("buyer-edge")


async def test_a_client_whose_pool_is_exhausted_waits_for_a_connection_instead_of_failing(
    settings: config.Settings, redis_client: aioredis.Redis
) -> None:
    # Regression (issue 8, item 7): the pool raised MaxConnectionsError at once, so a burst
    # of readiness probes reported Redis down. Two connections, three callers: the third
    # waits for one to come back.
    small = redis_conn.connect(config.RedisSettings(url=settings.redis.url, max_connections=2))
    keys = [f"pool-wait:{uuid.uuid4().hex}" for _ in range(3)]
    try:
        waiting = [asyncio.ensure_future(small.blpop([k], timeout=0)) for k in keys]
        for _ in range(400):  # until two of them block in Redis
            if int((await redis_client.info("clients"))["blocked_clients"]) >= 2:
                break
            await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiting)  # the third has no connection to block on
        for k in keys:
            await redis_client.rpush(k, "x")
        got: list[Any] = await asyncio.gather(*waiting)
        assert sorted(g[0] for g in got) == sorted(k.encode() for k in keys)
    finally:
        await small.aclose()


async def test_the_pooled_client_survives_a_redis_restart_without_a_failed_call(
    stack: devstack.Stack, settings: config.Settings
) -> None:
    # After a restart every pooled connection is dead; the first call on each must
    # reconnect rather than answer the buyer 503.
    client = redis_conn.connect(settings.redis)
    try:
        await asyncio.gather(*(client.ping() for _ in range(8)))  # several pooled connections
        redis_server = stack.servers["redis"]
        redis_server.stop()
        redis_server.start()
        assert all(await asyncio.gather(*(client.ping() for _ in range(8))))
    finally:
        await client.aclose()


def test_a_new_pooled_connection_reads_no_package_metadata(
    settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py looked up its own version (importlib.metadata) for every new connection:
    # 0.7 ms each, ~15% of an edge worker while a checkout storm grew its pool
    client = redis_conn.connect(settings.redis)

    def refuse(name: str) -> str:
        raise AssertionError(f"package metadata read for {name}")

    monkeypatch.setattr(importlib.metadata, "version", refuse)
    connection = client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
    assert connection.driver_info is not None
    assert connection.driver_info.lib_version
