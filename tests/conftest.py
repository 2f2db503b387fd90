"""Fixtures that start the real local stack (Redis, PostgreSQL, Kafka, stripe-mock) once per
session, and the edge under Granian as a real server process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from devtools import devstack
from nexuscart import config
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.redis_pipe import RedisPipe

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
    import asyncio

    from nexuscart.adapters.postgres import migrate_dsn

    asyncio.run(migrate_dsn(settings.postgres.dsn))


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


# Tests send everything from 127.0.0.1: the per-IP bucket is opened wide, the per-user one
# kept small enough to test.
EDGE_TEST_ENV = {
    "GATE_IP_RATE": "1000000",
    "GATE_IP_BURST": "1000000",
    "GATE_USER_RATE": "5",
    "GATE_USER_BURST": "10",
    "SOLD_OUT_REFRESH_MS": "200",
}


@pytest.fixture(scope="session")
def edge(stack: devstack.Stack, migrated: None) -> Iterator[EdgeServer]:
    server = EdgeServer("edge.app:app", EDGE_TEST_ENV, workers=2, cwd=ROOT)
    yield server
    server.stop()
