"""Brute-force guard of logins: failure counters per account and per client IP in Redis
(lua/login_attempt.lua, lua/login_settle.lua), counted before the password is checked.

Keys: ``login:a:<sha256 of the normalised email>`` and ``login:ip:<client ip>``, hashes
{n, until}; each expires after LOGIN_FAILURE_WINDOW_S without attempts (or when its lock
ends, if later). Unknown emails are counted exactly as known ones: the guard cannot tell
them apart, so neither can its answers.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Final, NamedTuple

import redis.asyncio as aioredis

from nexuscart.adapters.redis_conn import Script

ATTEMPT: Final = Script("login_attempt")
SETTLE: Final = Script("login_settle")


class Limits(NamedTuple):
    free: int
    base_s: float
    max_s: float
    window_s: int


def account_key(email: str) -> bytes:
    return b"login:a:" + hashlib.sha256(email.encode()).hexdigest().encode()


def ip_key(ip: str) -> bytes:
    return f"login:ip:{ip}".encode()


class LoginGuard:
    def __init__(self, client: aioredis.Redis, account: Limits, ip: Limits):
        self.client = client
        self.account = account
        self.ip = ip
        self._attempt = ATTEMPT.for_client(client)
        self._settle = SETTLE.for_client(client)

    @staticmethod
    def _args(limits: Limits) -> list[int]:
        return [
            limits.free,
            int(limits.base_s * 1000),
            int(limits.max_s * 1000),
            limits.window_s * 1000,
        ]

    async def attempt(self, email: str, ip: str) -> int:
        """Count an attempt for the account and the IP (one pipelined round trip); 0 when
        it may go on, else the seconds until the later of the two locks ends."""
        async with self.client.pipeline(transaction=False) as pipe:
            # redis-py's Script object takes a pipeline as its client
            await self._attempt(
                keys=[account_key(email)], args=self._args(self.account), client=pipe
            )
            await self._attempt(keys=[ip_key(ip)], args=self._args(self.ip), client=pipe)
            replies: Any = await pipe.execute()
        wait_ms = max((int(r[1]) for r in replies if int(r[0]) == 0), default=0)
        return max(1, math.ceil(wait_ms / 1000)) if wait_ms else 0

    async def succeeded(self, email: str, ip: str) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            await self._settle(keys=[account_key(email)], args=["reset"], client=pipe)
            await self._settle(keys=[ip_key(ip)], args=["refund"], client=pipe)
            await pipe.execute()
