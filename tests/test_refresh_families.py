"""Refresh-token families in real Redis (adapters/sessions.py, lua/rt_*.lua): rotation,
reuse detection, the retry grace period and logout, checked against a model over
hypothesis-drawn interleavings."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
import uvloop
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from nexuscart import config
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.adapters.sessions import SessionStore, families_key, family_key, seal, unseal
from nexuscart.domain import accounts as rules

TTL_S = 600
_users = itertools.count(7_000_000_000)


@dataclass
class Env:
    runner: asyncio.Runner
    store: SessionStore


@pytest.fixture(scope="module")
def env(settings: config.Settings) -> Iterator[Env]:
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    client = aioredis.Redis.from_url(settings.redis.url)
    try:
        yield Env(runner, SessionStore(client))
    finally:
        runner.run(client.aclose())
        runner.close()


async def login(store: SessionStore, user_id: int) -> rules.RefreshToken:
    token = rules.new_refresh_token(user_id, rules.new_family())
    await store.issue(token, TTL_S, ("customer",), disabled=False)
    return token


async def rotate(
    store: SessionStore, token: rules.RefreshToken, grace_s: int = 0
) -> tuple[str, str | None]:
    successor = rules.new_refresh_token(token.user_id, token.family)
    rot = await store.rotate(token, successor, grace_s, TTL_S)
    return rot.outcome, rot.token


@dataclass
class Model:
    """What one family should do, with no grace period: only its current token rotates;
    any other of its tokens revokes it; logout ends it."""

    tokens: list[rules.RefreshToken]
    alive: bool = True
    cur: int = 0
    prev: int | None = None
    log: list[str] = field(default_factory=list)


Op = st.tuples(st.sampled_from(["refresh", "logout", "logout-everywhere"]), st.integers(0, 20))


@hypothesis_settings(max_examples=60, deadline=None)
@given(ops=st.lists(Op, min_size=1, max_size=12))
def test_a_refresh_token_reused_after_rotation_revokes_its_family(
    env: Env, ops: list[tuple[str, int]]
) -> None:
    async def scenario() -> None:
        store = env.store
        uid = next(_users)
        model = Model([await login(store, uid)])
        bystander = await login(store, uid)  # another session of the same user
        bystander_alive = True
        for op, pick in ops:
            i = pick % len(model.tokens)
            token = model.tokens[i]
            if op == "refresh":
                outcome, new = await rotate(store, token)
                if not model.alive:
                    assert outcome == "invalid"
                elif i == model.cur:
                    assert outcome == "ok"
                    assert new is not None
                    parsed = rules.parse_refresh_token(new)
                    assert parsed is not None
                    model.tokens.append(parsed)
                    model.prev, model.cur = model.cur, len(model.tokens) - 1
                else:
                    assert outcome == "reused", (i, model)
                    model.alive = False
            else:
                outcome = await store.logout(token)
                if not model.alive:
                    assert outcome == "invalid"
                else:
                    want = "valid" if i in (model.cur, model.prev) else "reused"
                    assert outcome == want
                    model.alive = False
                    if op == "logout-everywhere" and want == "valid":
                        await store.revoke_all(uid)
                        bystander_alive = False
            assert await store.client.exists(family_key(uid, token.family)) == int(model.alive)
        outcome, _ = await rotate(store, bystander)
        assert outcome == ("ok" if bystander_alive else "invalid")
        families: set[str] = {bystander.family} if bystander_alive else set()
        if model.alive:
            families.add(model.tokens[0].family)
        assert await store.families(uid) == families

    env.runner.run(scenario())


def test_a_retry_within_the_grace_period_gets_the_same_successor(env: Env) -> None:
    async def scenario() -> None:
        store = env.store
        t1 = await login(store, next(_users))
        outcome, t2 = await rotate(store, t1, grace_s=30)
        assert outcome == "ok"
        # the client lost the answer and retries with t1: the same t2 again, many times
        again = await asyncio.gather(*(rotate(store, t1, grace_s=30) for _ in range(20)))
        assert again == [("replay", t2)] * 20
        assert t2 is not None
        t2_parsed = rules.parse_refresh_token(t2)
        assert t2_parsed is not None
        outcome, t3 = await rotate(store, t2_parsed, grace_s=30)
        assert outcome == "ok"
        # once t2 was used, t1 is two rotations old: a reuse, the family ends
        assert await rotate(store, t1, grace_s=30) == ("reused", None)
        t3_parsed = rules.parse_refresh_token(t3 or "")
        assert t3_parsed is not None
        assert (await rotate(store, t3_parsed, grace_s=30))[0] == "invalid"

    env.runner.run(scenario())


def test_parallel_refreshes_of_one_token_rotate_it_once(env: Env) -> None:
    async def scenario() -> None:
        store = env.store
        t1 = await login(store, next(_users))
        outcomes = sorted(
            o for o, _ in await asyncio.gather(*(rotate(store, t1) for _ in range(20)))
        )
        # no grace: one rotation; the first repeat is a reuse that ends the family
        assert outcomes[-1] == "reused"
        assert outcomes.count("ok") == 1
        assert set(outcomes) <= {"ok", "reused", "invalid"}
        assert not await store.client.exists(family_key(t1.user_id, t1.family))

    env.runner.run(scenario())


def test_a_disabled_user_cannot_refresh_and_loses_the_session(env: Env) -> None:
    async def scenario() -> None:
        store = env.store
        uid = next(_users)
        t1 = await login(store, uid)
        await store.put_record(uid, ("customer",), disabled=True)
        assert await rotate(store, t1) == ("disabled", None)
        assert not await store.client.exists(family_key(uid, t1.family))
        assert not await store.client.sismember(families_key(uid), t1.family)

    env.runner.run(scenario())


def test_a_missing_user_record_is_reported_not_guessed(env: Env) -> None:
    async def scenario() -> None:
        store = env.store
        uid = next(_users)
        t1 = await login(store, uid)
        await store.client.delete(f"{{u:{uid}}}:acct")
        assert (await rotate(store, t1))[0] == "nouser"
        await store.put_record(uid, ("customer", "seller"), disabled=False)
        successor = rules.new_refresh_token(uid, t1.family)
        rot = await store.rotate(t1, successor, 0, TTL_S)
        assert (rot.outcome, rot.roles) == ("ok", ("customer", "seller"))

    env.runner.run(scenario())


def test_rotation_on_the_lean_pipe_survives_a_lost_script_cache(
    env: Env, settings: config.Settings
) -> None:
    async def scenario() -> None:
        pipe = RedisPipe(settings.redis.url)
        store = SessionStore(env.store.client, pipe)
        try:
            t1 = await login(store, next(_users))
            await store.client.script_flush()  # as after a Redis restart
            outcome, _ = await rotate(store, t1)
            assert outcome == "ok"
            assert await rotate(store, t1) == ("reused", None)
        finally:
            pipe.close()

    env.runner.run(scenario())


@given(st.integers(1, 10**18 - 1))
def test_a_sealed_successor_opens_only_with_the_token_it_was_sealed_for(user_id: int) -> None:
    presented = rules.new_refresh_token(user_id, rules.new_family()).raw
    successor = rules.new_refresh_token(user_id, rules.new_family()).raw
    sealed = seal(successor, presented)
    assert unseal(sealed, presented) == successor
    assert successor.encode() not in sealed
    other = rules.new_refresh_token(user_id, rules.new_family()).raw
    with contextlib.suppress(UnicodeDecodeError):
        assert unseal(sealed, other) != successor
