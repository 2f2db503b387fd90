"""A worker's copies of Redis values (client-side caching, ADR 0019) never stay stale: a
pushed key is dropped, a read that a push overtook is not stored, and a lost connection
drops everything. Proved on the epochs alone (hypothesis) and on the real Redis."""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from nexuscart import config
from nexuscart.adapters.catalog_store import (
    CatalogStore,
    StockLevel,
    page_gen_key,
    page_key,
    stock_key,
)
from nexuscart.adapters.key_mirror import KeyMirror
from nexuscart.adapters.redis_pipe import RedisPipe, TickBatch

KEYS = [b"a", b"b", b"c"]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(KEYS)),
        st.tuples(st.just("read"), st.lists(st.sampled_from(KEYS), min_size=1, max_size=3)),
        st.tuples(st.just("deliver"), st.integers(0, 9)),  # the socket's next message
        st.tuples(st.just("put"), st.integers(0, 9)),  # a parsed reply reaches its caller
        st.tuples(st.just("lose"), st.none()),  # the connection is lost (pushes with it)
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(ops)
def test_once_every_push_is_in_no_copy_differs_from_redis(steps: list[tuple[str, object]]) -> None:
    # Redis runs each command when sent; its replies and pushes reach the worker in order
    # on one connection; a caller stores a parsed reply at any later time
    m = KeyMirror(max_keys=100)
    truth = dict.fromkeys(KEYS, 0)
    tracked: set[bytes] = set()
    stream: deque[tuple[str, object]] = deque()
    parsed: list[tuple[list[bytes], list[bytes], int]] = []

    def deliver() -> None:
        kind, item = stream.popleft()
        if kind == "push":
            m.invalidate([item])  # type: ignore[list-item]
        else:
            parsed.append(item)  # type: ignore[arg-type]

    for op, arg in steps:
        if op == "write":
            key = arg
            truth[key] += 1  # type: ignore[index]
            if key in tracked:
                tracked.discard(key)
                stream.append(("push", key))
        elif op == "read":
            keys = list(arg)  # type: ignore[call-overload]
            began = m.begin()
            tracked.update(keys)
            stream.append(("reply", (keys, [b"%d" % truth[k] for k in keys], began)))
        elif op == "deliver" and stream:
            deliver()
        elif op == "put" and parsed:
            m.put(*parsed.pop(int(arg) % len(parsed)))  # type: ignore[call-overload]
        elif op == "lose":
            stream.clear()
            tracked.clear()
            m.reset()
    while stream:
        deliver()
    for item in parsed:
        m.put(*item)
    assert {k: v for k, v in m.values.items()} == {k: b"%d" % truth[k] for k in m.values}


def test_a_full_copy_starts_over_and_a_flush_push_drops_everything() -> None:
    pushed: list[int] = []
    m = KeyMirror(max_keys=2, on_invalidated=pushed.append)
    m.put([b"a", b"b"], [b"1", None], m.begin())
    assert m.get([b"a", b"b"]) == [b"1", None]  # a missing key is a copy too
    m.put([b"c"], [b"3"], m.begin())
    assert m.values == {b"c": b"3"}
    m.invalidate([b"c", b"x"])
    assert m.get([b"c"]) is None
    assert pushed == [2]
    m.put([b"c"], [b"4"], m.begin())
    m.invalidate(None)
    assert m.get([b"c"]) is None


async def _pipe(settings: config.Settings, m: KeyMirror) -> RedisPipe:
    """A tracking pipe, connected: a read begun before its connection is never stored."""
    pipe = RedisPipe(settings.redis.url, 2.0, tracking=(m.invalidate, m.reset))
    assert await pipe.execute([(b"PING",)]) == [b"PONG"]
    return pipe


async def _read(pipe: RedisPipe | TickBatch, m: KeyMirror, keys: list[bytes]) -> list[Any]:
    """What CatalogStore.raw does on a miss: note the epoch, MGET, keep what no push
    overtook."""
    began = m.begin()
    (values,) = await pipe.execute([(b"MGET", *keys)])
    m.put(keys, values, began)
    return list(values)


async def _until(check: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the time")


@pytest.fixture
async def tracked(
    settings: config.Settings, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[KeyMirror, RedisPipe, bytes]]:
    """Copies, their tracking pipe (connected) and a fresh key."""
    m = KeyMirror(max_keys=100)
    pipe = await _pipe(settings, m)
    key = f"test:mirror:{uuid.uuid4().hex}".encode()
    yield m, pipe, key
    pipe.close()
    await redis_client.delete(key)


async def test_another_clients_write_drops_the_copy_and_the_next_read_sees_it(
    tracked: tuple[KeyMirror, RedisPipe, bytes], redis_client: aioredis.Redis
) -> None:
    m, pipe, key = tracked
    await redis_client.set(key, b"1")
    await _read(pipe, m, [key])
    assert m.get([key]) == [b"1"]
    await redis_client.set(key, b"2")
    await _until(lambda: m.get([key]) is None)
    assert await _read(pipe, m, [key]) == [b"2"]


async def test_a_lost_tracking_connection_drops_every_copy(
    tracked: tuple[KeyMirror, RedisPipe, bytes], redis_client: aioredis.Redis
) -> None:
    m, pipe, key = tracked
    await _read(pipe, m, [key])
    assert m.get([key]) == [None]
    (client_id,) = await pipe.execute([(b"CLIENT", b"ID")])
    await redis_client.client_kill_filter(_id=client_id)
    await _until(lambda: m.get([key]) is None)
    # the next connection tracks again (its first read is not kept: it began before)
    await _read(pipe, m, [key])
    await _read(pipe, m, [key])
    assert m.get([key]) == [None]
    await redis_client.set(key, b"x")
    await _until(lambda: m.get([key]) is None)


async def test_copies_equal_redis_after_a_storm_of_reads_and_writes(
    settings: config.Settings, redis_client: aioredis.Redis
) -> None:
    m = KeyMirror(max_keys=10_000)
    pipe = await _pipe(settings, m)
    batch = TickBatch(pipe)
    prefix = f"test:mirror:{uuid.uuid4().hex}:".encode()
    keys = [prefix + b"%d" % i for i in range(20)]
    rng = random.Random(7)

    async def reader() -> None:
        for _ in range(300):
            ks = rng.sample(keys, 3)
            if m.get(ks) is None:
                await _read(batch, m, ks)
            await asyncio.sleep(0)

    async def writer() -> None:
        for i in range(300):
            await redis_client.set(rng.choice(keys), b"%d" % i)

    try:
        await asyncio.gather(*(reader() for _ in range(8)), writer(), writer())
        await _read(batch, m, keys)

        async def settled() -> bool:
            truth = dict(zip(keys, await redis_client.mget(keys), strict=True))
            return all(truth[k] == v for k, v in m.values.items())

        for _ in range(500):
            if await settled():
                break
            await asyncio.sleep(0.01)
        assert await settled()
        assert m.values  # the copies were used
    finally:
        pipe.close()
        await redis_client.delete(*keys)


async def test_a_stock_read_takes_the_copied_keys_from_the_copies_and_reads_the_rest(
    settings: config.Settings, redis_client: aioredis.Redis
) -> None:
    m = KeyMirror(max_keys=100)
    pipe = await _pipe(settings, m)
    store = CatalogStore(redis_client, pipe, copies=m)
    a, b = (f"T-{uuid.uuid4().hex[:12]}" for _ in range(2))
    ka, kb = stock_key(a), stock_key(b)
    try:
        await store.set_levels([(a, StockLevel(1, 5, 0)), (b, StockLevel(1, 7, 0))])
        assert await store.raw([ka]) == [b"1:5:0"]
        assert m.get([ka]) == [b"1:5:0"]
        await redis_client.set(ka, b"1:6:0")  # a's copy stays until its push arrives
        assert await store.raw([ka, kb]) in ([b"1:5:0", b"1:7:0"], [b"1:6:0", b"1:7:0"])
        await _until(lambda: m.get([ka]) != [b"1:5:0"])  # dropped (or read again since)
        assert await store.raw([ka, kb]) == [b"1:6:0", b"1:7:0"]
        assert m.get([ka, kb]) == [b"1:6:0", b"1:7:0"]
    finally:
        pipe.close()
        await redis_client.delete(ka, kb)


async def test_a_shared_page_read_is_not_tracked_so_its_changes_push_nothing(
    settings: config.Settings, redis_client: aioredis.Redis
) -> None:
    """The shared pages' keys change with every product change; read on the tracking pipe,
    each change would be pushed to every worker as if stock had moved."""
    pushed: list[int] = []
    m = KeyMirror(max_keys=100, on_invalidated=pushed.append)
    pipe = await _pipe(settings, m)
    plain = RedisPipe(settings.redis.url, 2.0)  # as edge/deps.py wires it
    store = CatalogStore(redis_client, pipe, copies=m, plain=plain)
    pid = 10**15 + secrets.randbelow(10**9)
    try:
        assert await store.shared_page(pid) == (None, b"0")
        await store.publish_changed(pid)
        assert await pipe.execute([(b"PING",)]) == [b"PONG"]  # a push would be in before it
        assert pushed == []
        assert await store.shared_page(pid) == (None, b"1")
    finally:
        plain.close()
        pipe.close()
        await redis_client.delete(page_key(pid), page_gen_key(pid))
