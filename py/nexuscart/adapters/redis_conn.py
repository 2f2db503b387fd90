"""Redis connections and named Lua scripts (lua/*.lua, each loaded with the lua/lib.lua
prelude, called by EVALSHA)."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError

from nexuscart.config import RedisSettings

_DRIVER_INFO: Final = DriverInfo()


def connect(settings: RedisSettings, timeout_s: float = 2.0) -> aioredis.Redis:
    """A pooled client whose calls fail within ``timeout_s`` instead of hanging.

    When all ``max_connections`` are busy a caller waits up to ``timeout_s`` for one to come
    back (BlockingConnectionPool) instead of failing at once with MaxConnectionsError: a
    burst of readiness probes or page views must queue, not report Redis down.

    A call that finds its pooled connection closed (Redis restarted, failed over, or closed
    an idle client) is sent once more on a new connection instead of failing: such a call
    never reached Redis, and every write made through this client is idempotent (scripts
    keyed by order, sets of absolute values). Timeouts are not retried: they already took
    the whole deadline.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.url,
        max_connections=settings.max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=0,
        decode_responses=False,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        # one DriverInfo for every connection: without it redis-py reads its own package
        # metadata (importlib.metadata) for each new connection, ~15% of an edge worker
        # while a checkout storm grew the pool (py-spy)
        driver_info=_DRIVER_INFO,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns (and closes) its pool


def _lua(name: str) -> str:
    return resources.files("nexuscart.adapters").joinpath("lua", f"{name}.lua").read_text()


@cache
def lua_source(name: str) -> str:
    """A script as Redis runs it: the shared helpers of lib.lua, then the script itself."""
    return _lua("lib") + _lua(name)


class Script:
    """A named Lua script. ``sha`` serves the lean purchase pipe (which does its own NOSCRIPT
    recovery); ``for_client`` is redis-py's registered script for everything else
    (EVALSHA, then SCRIPT LOAD once and retry after a Redis restart)."""

    def __init__(self, name: str):
        self.name = name
        self.source = lua_source(name)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def for_client(self, client: aioredis.Redis) -> AsyncScript:
        return client.register_script(self.source)
