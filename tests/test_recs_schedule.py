"""The recommendation service's scheduled training (services/recommendations/schedule.py):
the promotion rule, one replica at a time, a round end to end on the real store, a round
with nothing to learn, and a child killed at its timeout or with the service.

Each stack test has a Redis database of its own (the session Redis' db 11, cleared of the
keys it uses) and a model directory of its own, set in the environment that the training
child inherits: no other test's log, active version or lock is in the way."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from nexuscart import config, tasks
from nexuscart.adapters.recs_registry import (
    ACTIVE_KEY,
    HISTORY_KEY,
    META_KEY,
    TRAIN_LOCK_KEY,
    ModelRegistry,
)
from nexuscart.adapters.recs_store import LOG_KEY
from nexuscart.domain import recs as rules
from services.recommendations.schedule import TrainingScheduler
from tests.conftest import ROOT
from tests.test_recs_signals import _until, log_shoppers

METRIC = rules.PROMOTE_METRIC
TOL = rules.PROMOTE_TOLERANCE

# --- the promotion rule (pure) ----------------------------------------------------------------

NDCG = st.floats(0.0, 1.0)


@given(new=NDCG, active=NDCG)
def test_a_new_version_is_promoted_iff_its_ndcg_is_at_most_the_tolerance_below_the_active(
    new: float, active: float
) -> None:
    promote, why = rules.promotion({METRIC: new, "users": 30.0}, {METRIC: active})
    assert promote == (new >= active - TOL)
    assert why


@given(new=NDCG, better=NDCG, active=NDCG)
def test_a_better_measured_version_is_never_kept_where_a_worse_one_is_promoted(
    new: float, better: float, active: float
) -> None:
    if rules.promotion({METRIC: new}, {METRIC: active})[0]:
        assert rules.promotion({METRIC: max(new, better)}, {METRIC: active})[0]


@given(new=st.dictionaries(st.sampled_from([METRIC, "users"]), st.floats(allow_nan=True)))
def test_any_new_version_is_promoted_when_none_is_active(new: dict[str, float]) -> None:
    assert rules.promotion(new, None) == (True, "no version is active")


@pytest.mark.parametrize("missing", [{}, {"users": 0.0}, {METRIC: math.nan}])
def test_a_version_without_a_holdout_measure_replaces_only_nothing(
    missing: dict[str, float],
) -> None:
    promote, why = rules.promotion(missing, {METRIC: 0.1})
    assert not promote
    assert "no holdout" in why
    assert rules.promotion({METRIC: 0.0}, missing)[0]  # a measured one replaces it


def test_a_kept_version_says_by_how_much_it_is_worse() -> None:
    promote, why = rules.promotion({METRIC: 0.30}, {METRIC: 0.31})
    assert not promote
    assert "0.3000" in why
    assert "0.3100" in why


# --- the scheduler on the real Redis, PostgreSQL and training command -------------------------


def runs(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("nexuscart_recs_training_runs_total", {"outcome": outcome}) or 0.0
    )


@pytest.fixture
async def own_db(
    settings: config.Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[aioredis.Redis]:
    url = settings.redis.url.rsplit("/", 1)[0] + "/11"
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("RECS_MODEL_DIR", str(tmp_path / "models"))
    client = aioredis.Redis.from_url(url)
    await client.delete(LOG_KEY, ACTIVE_KEY, HISTORY_KEY, META_KEY, TRAIN_LOCK_KEY)
    yield client
    await client.aclose()


@pytest.fixture
def registry(own_db: aioredis.Redis, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", own_db)


def fake_command(code: str, *args: object) -> list[str]:
    """A stand-in for the training command: ``code`` run by this Python."""
    return [sys.executable, "-c", code, *map(str, args)]


# writes its pid (appends: one line per run), then sleeps; prints what train does when the
# store holds nothing to learn
SLOW_SKIP = (
    "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n');"
    'time.sleep(float(sys.argv[2])); print(\'{"skipped": "fake"}\'); sys.exit(3)'
)


def dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_two_replicas_racing_for_a_round_train_once(
    registry: ModelRegistry, own_db: aioredis.Redis, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    replicas = [
        TrainingScheduler(ModelRegistry(registry.root, own_db), 3600,
                          command=fake_command(SLOW_SKIP, ran, 0.5))
        for _ in range(2)
    ]  # fmt: skip
    stop = asyncio.Event()
    outcomes = await asyncio.gather(*(r.round(stop) for r in replicas))
    assert sorted(outcomes, key=str) == [None, "skipped"]  # None: the lock was taken
    assert len(ran.read_text().splitlines()) == 1
    assert await own_db.get(TRAIN_LOCK_KEY) is None  # released by its holder
    assert await replicas[0].round(stop) == "skipped"  # and free for the next round


async def test_only_the_holder_releases_the_training_lock(
    registry: ModelRegistry, own_db: aioredis.Redis
) -> None:
    assert await registry.lock_training("mine", 60_000)
    assert not await registry.lock_training("theirs", 60_000)
    assert not await registry.unlock_training("theirs")  # e.g. a holder whose lock expired
    assert await own_db.get(TRAIN_LOCK_KEY) == b"mine"
    assert await registry.unlock_training("mine")
    assert await own_db.pttl(TRAIN_LOCK_KEY) == -2
    assert await registry.lock_training("theirs", 50)
    assert 0 < await own_db.pttl(TRAIN_LOCK_KEY) <= 50  # a dead holder's lock expires


async def test_a_scheduled_round_trains_from_the_live_store_and_promotes_when_none_is_active(
    settings: config.Settings, migrated: None, own_db: aioredis.Redis, registry: ModelRegistry
) -> None:
    await log_shoppers(settings, own_db)
    promoted, stop = runs("promoted"), asyncio.Event()
    task = asyncio.ensure_future(TrainingScheduler(registry, 0.1).run(stop))

    async def active() -> bool:
        return await registry.active() is not None

    try:
        await _until(active, 120)
    finally:
        stop.set()
        await task
    version = await registry.active()
    assert version is not None
    meta = await registry.meta(version)
    assert meta is not None
    assert meta["data"]["source"] == "recs:log"
    assert 0 < meta["data"]["users"] <= 150  # the shoppers of log_shoppers, no other test's
    assert METRIC in meta["metrics"]
    assert (registry.root / version / "ranker.ubj").exists()
    assert runs("promoted") == promoted + 1
    gauge = REGISTRY.get_sample_value("nexuscart_recs_training_seconds")
    assert gauge is not None
    assert gauge > 0


async def test_a_round_with_no_signals_counts_skipped_and_the_schedule_goes_on(
    settings: config.Settings, migrated: None, registry: ModelRegistry
) -> None:
    skipped, stop = runs("skipped"), asyncio.Event()
    t0 = time.monotonic()
    task = asyncio.ensure_future(TrainingScheduler(registry, 0.3).run(stop))

    async def twice() -> bool:
        return runs("skipped") >= skipped + 2

    try:
        await _until(twice, 60)
        assert not task.done()  # neither crashed nor ended
    finally:
        stop.set()
        await task
    assert time.monotonic() - t0 >= 2 * 0.3  # each round one interval after the one before
    assert await registry.active() is None


async def test_a_version_worse_than_the_active_one_is_kept_saved_but_not_promoted(
    registry: ModelRegistry,
) -> None:
    best = registry.save({}, b"", {"metrics": {METRIC: 0.40}})
    await registry.promote(best)
    worse = registry.save({}, b"", {"metrics": {METRIC: 0.30}})
    await registry.register(worse)  # what the command does with the version it saved
    line = f'{{"version": "{worse}", "metrics": {{"{METRIC}": 0.30}}}}'
    kept = runs("kept")
    sched = TrainingScheduler(registry, 3600, command=fake_command(f"print({line!r})"))
    assert await sched.round(asyncio.Event()) == "kept"
    assert await registry.active() == best
    assert worse in await registry.versions()
    assert runs("kept") == kept + 1


async def test_a_child_past_its_timeout_is_killed_and_the_round_counts_failed(
    registry: ModelRegistry, own_db: aioredis.Redis, tmp_path: Path
) -> None:
    pids, failed = tmp_path / "pids", runs("failed")
    sched = TrainingScheduler(registry, 3600, timeout_s=1.0,
                              command=fake_command(SLOW_SKIP, pids, 60))  # fmt: skip
    t0 = time.monotonic()
    assert await sched.round(asyncio.Event()) == "failed"
    assert time.monotonic() - t0 < 10
    assert dead(int(pids.read_text()))
    assert runs("failed") == failed + 1
    assert await own_db.get(TRAIN_LOCK_KEY) is None


@pytest.mark.parametrize("how", ["stop", "cancel"])
async def test_the_service_stopping_kills_a_running_child_at_once(
    registry: ModelRegistry, own_db: aioredis.Redis, tmp_path: Path, how: str
) -> None:
    pids, counted = tmp_path / "pids", sum(map(runs, ("promoted", "kept", "skipped", "failed")))
    stop = asyncio.Event()
    sched = TrainingScheduler(registry, 0.05, command=fake_command(SLOW_SKIP, pids, 60))
    task = asyncio.ensure_future(sched.run(stop))

    async def started() -> bool:
        return pids.exists() and pids.read_text().endswith("\n")

    await _until(started, 10)
    t0 = time.monotonic()
    if how == "stop":  # the service's stop event
        stop.set()
        await task
    else:  # bootstrap.main stopping the task when the consumer ends
        await tasks.stop(task)
    assert time.monotonic() - t0 < 5
    assert dead(int(pids.read_text()))
    assert sum(map(runs, ("promoted", "kept", "skipped", "failed"))) == counted  # no outcome
    assert await own_db.get(TRAIN_LOCK_KEY) is None


# a service's scheduler running one round of ``argv[3]`` (its pid file argv[4]; the lock's
# time to live argv[5]), as a process of its own so that the test can SIGKILL it
_SERVICE = """
import asyncio, sys
from pathlib import Path
import redis.asyncio as aioredis
from nexuscart.adapters.recs_registry import ModelRegistry
from services.recommendations.schedule import TrainingScheduler

async def main() -> None:
    registry = ModelRegistry(Path(sys.argv[2]), aioredis.Redis.from_url(sys.argv[1]))
    command = [sys.executable, "-c", sys.argv[3], sys.argv[4], "60"]
    sched = TrainingScheduler(registry, 3600, command=command, lock_ttl_s=float(sys.argv[5]))
    await sched.round(asyncio.Event())

asyncio.run(main())
"""


def gone(pid: int) -> bool:
    """Dead, or a zombie waiting for whoever adopted it to reap it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(b")") + 2 :].startswith(b"Z")


async def test_a_service_killed_with_sigkill_takes_its_training_child_with_it(
    own_db: aioredis.Redis, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SERVICE, os.environ["REDIS_URL"], str(tmp_path / "models"),
        SLOW_SKIP, str(pids), "1.0", cwd=ROOT,
    )  # fmt: skip
    try:

        async def started() -> bool:
            return pids.exists() and pids.read_text().endswith("\n")

        await _until(started, 20)
        child = int(pids.read_text())
        service.kill()  # no chance to stop its child
        await service.wait()

        async def child_gone() -> bool:
            return gone(child)

        await _until(child_gone, 5)
    finally:
        if service.returncode is None:
            service.kill()
            await service.wait()

    async def lock_free() -> bool:  # nobody keeps the dead replica's lock: it expires
        return await own_db.get(TRAIN_LOCK_KEY) is None

    await _until(lock_free, 5)


async def test_a_round_longer_than_the_locks_life_keeps_the_lock_until_it_ends(
    registry: ModelRegistry, own_db: aioredis.Redis, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    sched = TrainingScheduler(registry, 3600, command=fake_command(SLOW_SKIP, pids, 2.0),
                              lock_ttl_s=0.6)  # fmt: skip
    other = TrainingScheduler(registry, 3600, command=fake_command(SLOW_SKIP, pids, 0))
    running = asyncio.ensure_future(sched.round(asyncio.Event()))
    await asyncio.sleep(1.5)  # well past the lock's 0.6 s
    assert await own_db.get(TRAIN_LOCK_KEY) is not None
    assert await other.round(asyncio.Event()) is None  # still this round's
    assert await running == "skipped"
    assert await own_db.get(TRAIN_LOCK_KEY) is None
    assert len(pids.read_text().split()) == 1
