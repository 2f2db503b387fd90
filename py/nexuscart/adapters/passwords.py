"""Argon2id password hashes (argon2-cffi) computed off the event loop.

A hash at the OWASP parameters (m=19 MiB, t=2, p=1) costs tens of milliseconds of CPU: on
the event loop it would stall every other request of the worker. ``PasswordHasher`` runs it
in a small thread pool (argon2-cffi releases the GIL while hashing) whose threads are
reniced, so the kernel prefers the event loop's thread when both want a core; the number
of hashes waiting is bounded, and beyond it ``HasherBusy`` (the edge answers 503 with
Retry-After) instead of an ever-growing queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet, Argon2id: m=19456 KiB, t=2, p=1
TIME_COST: Final = 2
MEMORY_KIB: Final = 19_456
PARALLELISM: Final = 1
HASH_THREAD_NICE: Final = 10  # added to the process's nice value


class HasherBusy(Exception):
    """Too many hashes are waiting in this worker: retry later."""


def _renice() -> None:
    # Linux applies a nice value per thread (its native id); elsewhere this is a no-op.
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        own = os.getpriority(os.PRIO_PROCESS, tid)  # inherited from the event loop's thread
        os.setpriority(os.PRIO_PROCESS, tid, min(19, own + HASH_THREAD_NICE))


class PasswordHasher:
    def __init__(
        self,
        threads: int = 1,
        queue: int = 32,
        time_cost: int = TIME_COST,
        memory_kib: int = MEMORY_KIB,
        parallelism: int = PARALLELISM,
    ):
        self.argon = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self.limit = threads + queue
        self.in_flight = 0
        self._pool = ThreadPoolExecutor(threads, "argon2", initializer=_renice)
        self._dummy: str | None = None

    async def _run(self, fn: object, *args: object) -> object:
        if self.in_flight >= self.limit:
            raise HasherBusy
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]
        finally:
            self.in_flight -= 1

    async def hash(self, password: bytes) -> str:
        return str(await self._run(self.argon.hash, password))

    async def verify(self, password_hash: str | None, password: bytes) -> bool:
        """True when ``password`` matches. A missing hash (unknown account) is checked
        against a dummy one, so an unknown email costs the same time as a wrong password."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_bytes(16))
            password_hash = self._dummy
            password = b"\x00" + password  # never matches: the dummy's password is random
        return bool(await self._run(self._verify, password_hash, password))

    def _verify(self, password_hash: str, password: bytes) -> bool:
        try:
            return self.argon.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self.argon.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
