"""Stopping background tasks for certain.

On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that lands in the same tick
as its inner future completes (CPython gh-86296, fixed in 3.12 by rewriting ``wait_for``).
redis-py wraps every command send in ``wait_for`` when the client has a socket timeout, so a
single ``task.cancel()`` of a loop that talks to Redis is lost now and then, and the loop
runs on forever: a worker that never shuts down, a test session that hangs. ``stop`` cancels
again until the task is done, waiting with ``asyncio.wait`` (which neither raises the task's
``CancelledError`` nor absorbs the caller's own cancellation).
"""

from __future__ import annotations

import asyncio
from typing import Any

# Between repeated cancellations: long enough for a task's own cleanup (a final commit, a
# connection close) to finish undisturbed, short enough that a lost cancel costs little.
RECANCEL_S = 0.25


async def stop(*tasks: asyncio.Future[Any]) -> None:
    """Cancel ``tasks`` and return once every one of them is done."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
    for t in tasks:  # retrieved, so asyncio never logs "exception was never retrieved"
        if not t.cancelled():
            t.exception()
