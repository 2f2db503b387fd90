"""The brute-force guard in real Redis (adapters/login_guard.py, lua/login_attempt.lua):
attempts are counted before the password check, so parallel attempts cannot outrun the
lock; the lock follows domain.accounts.lock_seconds; success resets the account."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from nexuscart import config
from nexuscart.adapters import redis_conn
from nexuscart.adapters.login_guard import Limits, LoginGuard, account_key
from nexuscart.domain.accounts import lock_seconds

ACCOUNT = Limits(free=5, base_s=2.0, max_s=60.0, window_s=600)
IP = Limits(free=1_000_000, base_s=2.0, max_s=60.0, window_s=600)


@pytest.fixture
async def pooled(settings: config.Settings) -> AsyncIterator[aioredis.Redis]:
    # the edge's kind of client: callers beyond the pool wait for a connection
    client = redis_conn.connect(settings.redis, timeout_s=10.0)
    yield client
    await client.aclose()


def new_email() -> str:
    return f"guard-{uuid.uuid4().hex}@example.com"


async def test_500_parallel_attempts_let_only_the_free_ones_through(
    pooled: aioredis.Redis,
) -> None:
    guard = LoginGuard(pooled, ACCOUNT, IP)
    email = new_email()
    waits = await asyncio.gather(*(guard.attempt(email, "10.9.0.1") for _ in range(500)))
    assert waits.count(0) == ACCOUNT.free
    assert all(w >= 1 for w in waits if w)


async def test_the_lock_grows_as_lock_seconds_says(redis_client: aioredis.Redis) -> None:
    guard = LoginGuard(redis_client, ACCOUNT, IP)
    email = new_email()
    for n in range(1, 9):
        assert await guard.attempt(email, "10.9.0.2") == 0
        want = lock_seconds(n, ACCOUNT.free, ACCOUNT.base_s, ACCOUNT.max_s)
        left_ms = int(await redis_client.hget(account_key(email), "until") or 0)
        if want:
            # the lock ends want seconds after the attempt; end it now to count the next one
            assert left_ms > 0
            wait = await guard.attempt(email, "10.9.0.2")
            assert 1 <= wait <= want
            await redis_client.hset(account_key(email), "until", 0)
        else:
            assert left_ms == 0


async def test_success_resets_the_account_and_refunds_the_ip(redis_client: aioredis.Redis) -> None:
    ip_limits = Limits(free=3, base_s=2.0, max_s=60.0, window_s=600)
    guard = LoginGuard(redis_client, ACCOUNT, ip_limits)
    ip = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    for _ in range(10):  # ten good logins from one address never lock it
        email = new_email()
        assert await guard.attempt(email, ip) == 0
        await guard.succeeded(email, ip)
        assert not await redis_client.exists(account_key(email))
    for _ in range(ip_limits.free):  # failures from it do
        assert await guard.attempt(new_email(), ip) == 0
    assert await guard.attempt(new_email(), ip) > 0
