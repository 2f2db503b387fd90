"""Access-token revocation through real Redis: ``revocations.revoke_before`` (durable, only
forward), ``RevocationFeed`` (load at start, then follow), and a running edge (2 workers)
that refuses a revoked user's token within the feed's delay while other users and fresh
tokens keep working."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from nexuscart import _core, auth, config, tasks
from nexuscart.adapters import revocations
from nexuscart.adapters.revocations import FEED_KEY, NOT_BEFORE_KEY, RevocationFeed
from tests.conftest import EdgeServer

SECRET = config.dev_defaults()["JWT_SECRET"]
DEADLINE_S = 10.0  # generous bound for "eventually" (the feed's delay is milliseconds)

_users = iter(range(30_000_000, 31_000_000))


def bearer(user_id: int, now: float | None = None) -> str:
    return "Bearer " + auth.issue(SECRET, user_id, now=now)


async def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


async def test_revoke_before_is_durable_and_only_moves_forward(
    redis_client: aioredis.Redis,
) -> None:
    user = next(_users)
    await revocations.revoke_before(redis_client, user, 1_800_000_000.25)
    await revocations.revoke_before(redis_client, user, 1_700_000_000.0)  # earlier: no change
    assert await redis_client.zscore(NOT_BEFORE_KEY, str(user)) == 1_800_000_000.25
    entries: list[Any] = await redis_client.xrevrange(FEED_KEY, count=2) or []
    assert [(e[1][b"user"], e[1][b"nb"]) for e in entries] == [
        (str(user).encode(), b"1700000000.0"),
        (str(user).encode(), b"1800000000.25"),
    ]
    with pytest.raises(ValueError, match="user_id"):
        await revocations.revoke_before(redis_client, 0, 1.0)


async def test_feed_loads_existing_revocations_then_follows_new_ones(
    redis_client: aioredis.Redis,
) -> None:
    early, late, other = next(_users), next(_users), next(_users)
    now = time.time()
    old = {u: bearer(u, now - 60) for u in (early, late, other)}
    await revocations.revoke_before(redis_client, early, now - 1)
    verifier = _core.TokenVerifier(SECRET, "nexuscart")
    feed = RevocationFeed(redis_client, verifier, block_ms=200)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(feed.loaded.wait(), DEADLINE_S)
        with pytest.raises(auth.AuthError, match="token revoked"):
            verifier.principal(old[early])  # loaded at start
        assert verifier.principal(old[late])[0] == late  # cached now, revoked below
        await revocations.revoke_before(redis_client, late, time.time())

        def refused() -> bool:
            try:
                verifier.principal(old[late])
            except auth.AuthError:
                return True
            return False

        await eventually(refused)
        assert verifier.principal(old[other])[0] == other
        assert verifier.principal(bearer(late))[0] == late  # a fresh token works
    finally:
        await tasks.stop(task)


async def test_feed_survives_a_bad_entry_and_keeps_following(
    redis_client: aioredis.Redis,
) -> None:
    verifier = _core.TokenVerifier(SECRET, "nexuscart")
    feed = RevocationFeed(redis_client, verifier, block_ms=200)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(feed.loaded.wait(), DEADLINE_S)
        user = next(_users)
        token = bearer(user, time.time() - 5)
        await redis_client.xadd(FEED_KEY, {"user": "not-a-number", "nb": "1"})
        await redis_client.xadd(FEED_KEY, {"user": str(2**70), "nb": "1"})  # out of range
        await revocations.revoke_before(redis_client, user, time.time())
        await eventually(lambda: verifier.revocations_len() >= 1 and _refused(verifier, token))
    finally:
        await tasks.stop(task)


def _refused(verifier: _core.TokenVerifier, authorization: str) -> bool:
    try:
        verifier.principal(authorization)
    except auth.AuthError:
        return True
    return False


async def test_a_running_edge_refuses_a_revoked_users_token(
    edge: EdgeServer, redis_client: aioredis.Redis
) -> None:
    """Every worker learns the revocation: the token is refused on 20 fresh connections in a
    row (the edge has 2 workers); another user's token and a token minted after the
    revocation (a login right after a password change) keep working."""
    victim, bystander = next(_users), next(_users)
    old, theirs = bearer(victim), bearer(bystander)
    url = f"{edge.url}/users/me/orders"

    def status(authorization: str) -> httpx.Response:
        # a new connection per call, so both workers are asked
        with httpx.Client(timeout=10) as c:
            return c.get(url, headers={"authorization": authorization})

    assert status(old).status_code == 200
    await revocations.revoke_before(redis_client, victim, time.time())
    fresh = bearer(victim)  # e.g. the login right after a password change
    streak = 0
    deadline = time.monotonic() + DEADLINE_S
    while streak < 20:
        assert time.monotonic() < deadline, "the edge kept accepting the revoked token"
        r = status(old)
        if r.status_code == 401:
            assert r.json()["detail"] == "token revoked"
            streak += 1
        else:
            assert r.status_code == 200
            streak = 0
            await asyncio.sleep(0.01)
    for _ in range(10):
        assert status(theirs).status_code == 200
        assert status(fresh).status_code == 200


async def test_feed_reloads_the_set_so_a_missed_stream_entry_is_not_lost(
    redis_client: aioredis.Redis,
) -> None:
    """A revocation in the sorted set without its stream entry (trimmed, or written while
    the worker was away) is applied at the next periodic reload."""
    verifier = _core.TokenVerifier(SECRET, "nexuscart")
    feed = RevocationFeed(redis_client, verifier, block_ms=50, resync_s=0.2)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(feed.loaded.wait(), DEADLINE_S)
        user = next(_users)
        token = bearer(user, time.time() - 5)
        assert verifier.principal(token)[0] == user
        await redis_client.zadd(NOT_BEFORE_KEY, {str(user): time.time()})  # no stream entry
        await eventually(lambda: _refused(verifier, token))
    finally:
        await tasks.stop(task)


async def test_feed_keeps_retrying_while_redis_is_unreachable() -> None:
    """No Redis at all: the feed neither raises nor gives up; what the verifier knows stays."""
    verifier = _core.TokenVerifier(SECRET, "nexuscart")
    verifier.revoke_before(5, time.time())
    dead = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    feed = RevocationFeed(dead, verifier, retry_s=0.01)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.sleep(0.3)
        assert not task.done()
        assert not feed.loaded.is_set()
        assert verifier.revocations_len() == 1
    finally:
        await tasks.stop(task)
        await dead.aclose()
