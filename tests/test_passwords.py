"""Argon2id hashing off the event loop (adapters/passwords.py): OWASP parameters, a bounded
queue (beyond it HasherBusy, answered 503), the dummy hash of unknown accounts, rehash
when the parameters change."""

from __future__ import annotations

import asyncio

import pytest

from nexuscart.adapters.passwords import HasherBusy, PasswordHasher


async def test_hashes_use_the_owasp_argon2id_parameters() -> None:
    hasher = PasswordHasher()
    try:
        h = await hasher.hash(b"correct horse")
        assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert await hasher.verify(h, b"correct horse")
        assert not await hasher.verify(h, b"correct horsE")
        assert not hasher.needs_rehash(h)
    finally:
        hasher.close()


async def test_an_unknown_account_is_checked_against_a_dummy_hash() -> None:
    hasher = PasswordHasher()
    try:
        assert not await hasher.verify(None, b"anything")
        assert hasher._dummy is not None  # the same work as a real check: one verify
        assert not await hasher.verify("not a hash", b"anything")
    finally:
        hasher.close()


async def test_hashes_beyond_the_queue_are_refused_not_queued() -> None:
    hasher = PasswordHasher(threads=1, queue=2)
    try:
        results = await asyncio.gather(
            *(hasher.hash(b"pw %d" % i) for i in range(6)), return_exceptions=True
        )
        busy = [r for r in results if isinstance(r, HasherBusy)]
        assert len(busy) == 3  # one hashing, two waiting
        assert hasher.in_flight == 0
    finally:
        hasher.close()


async def test_a_hash_made_with_weaker_parameters_needs_a_rehash() -> None:
    old = PasswordHasher(time_cost=1, memory_kib=8192)
    new = PasswordHasher()
    try:
        h = await old.hash(b"pw")
        assert new.needs_rehash(h)
        assert await new.verify(h, b"pw")  # still verifies: the hash names its parameters
    finally:
        old.close()
        new.close()


@pytest.mark.parametrize("garbage", ["", "$argon2id$", "plain"])
def test_an_unreadable_hash_needs_a_rehash(garbage: str) -> None:
    hasher = PasswordHasher()
    try:
        assert hasher.needs_rehash(garbage)
    finally:
        hasher.close()


async def test_the_event_loop_keeps_running_while_a_hash_is_computed() -> None:
    hasher = PasswordHasher()
    try:
        turns = 0
        task = asyncio.ensure_future(hasher.hash(b"pw"))
        while not task.done():
            turns += 1
            await asyncio.sleep(0)
        await task
        # a hash on the loop would have run to completion before the first turn
        assert turns > 1
    finally:
        hasher.close()


def test_hashing_threads_run_reniced() -> None:
    import os
    import threading

    hasher = PasswordHasher()
    try:

        def nice() -> int:
            return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        assert hasher._pool.submit(nice).result() == min(19, nice() + 10)
    finally:
        hasher.close()
