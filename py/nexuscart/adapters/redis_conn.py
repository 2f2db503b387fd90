"""Redis connections and named Lua scripts (lua/*.lua, loaded once, called by EVALSHA)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from nexuscart.config import RedisSettings


def connect(settings: RedisSettings, timeout_s: float = 2.0) -> aioredis.Redis:
    """A pooled client whose calls fail within ``timeout_s`` instead of hanging."""
    return aioredis.Redis.from_url(
        settings.url,
        max_connections=settings.max_connections,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=0,
        decode_responses=False,
    )


def lua_source(name: str) -> str:
    return resources.files("nexuscart.adapters").joinpath("lua", f"{name}.lua").read_text()


class Script:
    """A named Lua script: EVALSHA, falling back to SCRIPT LOAD once after a Redis restart."""

    def __init__(self, name: str):
        self.name = name
        self.source = lua_source(name)
        import hashlib

        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def __call__(self, client: aioredis.Redis, keys: list[Any], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)
