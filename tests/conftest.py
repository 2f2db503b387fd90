"""Fixtures that start the real local stack (Redis, PostgreSQL, Kafka, stripe-mock) once per
session, and the edge under Granian as a real server process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop

from devtools import devstack
from nexuscart import config
from nexuscart.adapters import postgres
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.redis_pipe import RedisPipe
from services.orders.projector import OrdersProjector

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def stack() -> Iterator[devstack.Stack]:
    problems = devstack.check_prerequisites()
    if problems:
        pytest.exit("missing prerequisites (run scripts/bootstrap): " + "; ".join(problems), 2)
    s = devstack.start_stack()
    env = {**config.dev_defaults(), **s.env}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield s
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s.stop()


@pytest.fixture(scope="session")
def settings(stack: devstack.Stack) -> config.Settings:
    return config.load()


@pytest.fixture(scope="session")
def migrated(settings: config.Settings) -> None:
    from nexuscart.adapters.postgres import migrate_dsn

    asyncio.run(migrate_dsn(settings.postgres.dsn))


@dataclass
class Projection:
    """The orders projector on its own uvloop (as services/runtime.py runs it) over a real
    pool, for synchronous tests that drive it batch by batch."""

    runner: asyncio.Runner
    pool: Any
    projector: OrdersProjector


@pytest.fixture(scope="module")
def projection(settings: config.Settings, migrated: None) -> Iterator[Projection]:
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    pool = runner.run(postgres.create_pool(settings.postgres, timeout_s=10.0))
    try:
        yield Projection(runner, pool, OrdersProjector(pool))
    finally:
        runner.run(pool.close())
        runner.close()


@pytest.fixture
async def store(settings: config.Settings) -> AsyncIterator[FlashSaleStore]:
    client = aioredis.Redis.from_url(settings.redis.url)
    store = FlashSaleStore(client, RedisPipe(settings.redis.url))
    yield store
    store.close()
    await client.aclose()


@pytest.fixture
async def redis_client(settings: config.Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis.url)
    yield client
    await client.aclose()


# The edge under Granian as a real server process (shared with loadtest/).
EdgeServer = devstack.GranianServer


# Tests send everything from 127.0.0.1: the per-IP limits (purchase bucket, login rate and
# failed logins, which the session's Redis remembers across tests) are opened wide, the
# per-user bucket kept small enough to test.
EDGE_TEST_ENV = {
    "GATE_IP_RATE": "1000000",
    "GATE_IP_BURST": "1000000",
    "LOGIN_IP_RATE": "1000000",
    "LOGIN_IP_BURST": "1000000",
    "LOGIN_IP_FREE_FAILURES": "1000000",
    "GATE_USER_RATE": "5",
    "GATE_USER_BURST": "10",
    "SOLD_OUT_REFRESH_MS": "200",
}


@pytest.fixture(scope="session")
def edge(stack: devstack.Stack, migrated: None) -> Iterator[EdgeServer]:
    server = EdgeServer("edge.app:app", EDGE_TEST_ENV, workers=2, cwd=ROOT)
    yield server
    server.stop()
