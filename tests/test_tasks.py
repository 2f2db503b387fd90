"""``tasks.stop`` ends a task even when Python 3.11's ``wait_for`` swallowed its first
cancellation (CPython gh-86296), the cause of a test session that hung forever on a
revocation feed whose cancel was lost inside redis-py."""

from __future__ import annotations

import asyncio

from nexuscart import tasks


async def _loop_through_wait_for() -> None:
    # like a feed: each iteration sends a Redis command (redis-py wraps the send in wait_for,
    # and its inner future completes at once), then blocks reading the reply
    loop = asyncio.get_running_loop()
    while True:
        sent: asyncio.Future[None] = loop.create_future()
        loop.call_soon(sent.set_result, None)
        await asyncio.wait_for(sent, 10)
        await asyncio.sleep(0.01)


async def test_stop_ends_a_loop_whatever_the_tick_its_cancellation_lands_on() -> None:
    for offset in range(8):  # some offsets land inside 3.11's swallow window
        task = asyncio.ensure_future(_loop_through_wait_for())
        for _ in range(offset):
            await asyncio.sleep(0)
        async with asyncio.timeout(5):
            await tasks.stop(task)
        assert task.cancelled()


async def test_stop_keeps_a_tasks_own_error_retrievable_and_ignores_finished_tasks() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    failed = asyncio.ensure_future(fails())
    finished = asyncio.ensure_future(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await tasks.stop(failed, finished)
    assert isinstance(failed.exception(), ValueError)
    assert finished.done()
    assert not finished.cancelled()
