"""Composition root of the edge process: settings, clients and the gate, built once per worker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

from nexuscart import config
from nexuscart.adapters import kafka, postgres, redis_conn


@dataclass
class Deps:
    settings: config.Settings
    redis: aioredis.Redis
    pg: asyncpg.Pool | None = None
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    closers: list[Callable[[], object]] = field(default_factory=list)  # run by close()
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        # The pool is created lazily by pg_pool(): the edge must start (and answer /readyz
        # with 503) while PostgreSQL is down.
        self.tasks = [asyncio.ensure_future(job()) for job in self.background]

    async def pg_pool(self) -> asyncpg.Pool:
        if self.pg is None:
            self.pg = await postgres.create_pool(
                self.settings.postgres, self.settings.edge.dependency_timeout_s
            )
        return self.pg

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for closer in self.closers:
            closer()
        await self.redis.aclose()
        if self.pg is not None:
            await self.pg.close()

    async def check_redis(self) -> None:
        await self.redis.ping()

    async def check_postgres(self) -> None:
        pool = await self.pg_pool()
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def check_kafka(self) -> None:
        await kafka.metadata_ok(
            self.settings.kafka.bootstrap, self.settings.edge.dependency_timeout_s
        )


def build(settings: config.Settings | None = None) -> Deps:
    settings = settings or config.load()
    return Deps(
        settings=settings,
        redis=redis_conn.connect(settings.redis, settings.edge.dependency_timeout_s),
    )
