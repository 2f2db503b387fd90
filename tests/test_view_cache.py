"""The per-worker sale-view cache: one refresh in flight per sale, stale views served meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from edge.flash_sales import ViewCache


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self, sale_id: int) -> bytes:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise LookupError(sale_id)
        return f"view {sale_id} #{self.calls}".encode()


async def test_concurrent_misses_share_one_load() -> None:
    # Regression: every request that arrived while the view was expired went to Redis.
    load = Loader()
    cache = ViewCache(load, ttl_s=60)
    waiters = [asyncio.ensure_future(cache.get(1)) for _ in range(100)]
    await asyncio.sleep(0)
    load.gate.set()
    assert set(await asyncio.gather(*waiters)) == {b"view 1 #1"}
    assert load.calls == 1


async def test_an_expired_view_is_served_while_one_refresh_runs() -> None:
    load = Loader()
    load.gate.set()
    cache = ViewCache(load, ttl_s=0)
    assert await cache.get(1) == b"view 1 #1"
    load.gate.clear()
    stale = [await cache.get(1) for _ in range(50)]  # expired: stale answers, one refresh
    assert stale == [b"view 1 #1"] * 50
    await asyncio.sleep(0)  # the one refresh starts
    assert load.calls == 2
    load.gate.set()
    await asyncio.sleep(0.01)
    assert await cache.get(1) in (b"view 1 #2", b"view 1 #3")


async def test_a_failed_load_reaches_the_waiters_and_the_next_request_retries() -> None:
    load = Loader()
    load.fail = True
    load.gate.set()
    cache = ViewCache(load, ttl_s=60)
    with pytest.raises(LookupError):
        await cache.get(7)
    load.fail = False
    assert await cache.get(7) == b"view 7 #2"
