"""The recommendation service's scheduled training (docs/recommendations.md): every
RECS_TRAIN_INTERVAL_S, ``train --from-redis`` in a child process, one replica at a time, and
the new version promoted when the promotion rule (``domain.recs.promotion``) says so.

A child process, not a thread: training holds the GIL and both cores for up to a minute,
which would stall the consumer's event loop; a child can also be killed (timeout, stop)
where a thread cannot. It inherits the service's environment, so it trains from the same
Redis, PostgreSQL and RECS_MODEL_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Final, Literal

import msgspec

from nexuscart import observability, tasks
from nexuscart.adapters.recs_registry import ModelRegistry
from nexuscart.children import die_with_parent
from nexuscart.domain import recs as rules
from services.runtime import sleep_or_stop

log = logging.getLogger("nexuscart.recommendations")

TRAIN_COMMAND: Final = (
    sys.executable, "-m", "services.recommendations", "train", "--from-redis", "--json",
)  # fmt: skip
# 1M interactions train in about a minute here (docs/recommendations.md), so the default
# RECS_LOG_MAXLEN (2M) should take a few; a child still running after this is stuck
TRAIN_TIMEOUT_S: Final = 1800.0
# the lock lives this long unless its holder, while it trains, keeps it (every third of it):
# a replica that dies frees it within this time
LOCK_TTL_S: Final = 60.0

Outcome = Literal["promoted", "kept", "skipped", "failed"]


class Summary(msgspec.Struct, frozen=True):
    """The last line the training command prints with ``--json``."""

    version: str = ""
    metrics: dict[str, float] = {}
    skipped: str = ""


class TrainingScheduler:
    def __init__(
        self, registry: ModelRegistry, interval_s: float, *,
        timeout_s: float = TRAIN_TIMEOUT_S, command: Sequence[str] = TRAIN_COMMAND,
        lock_ttl_s: float = LOCK_TTL_S,
    ) -> None:  # fmt: skip
        self.registry = registry
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.lock_ttl_ms = int(lock_ttl_s * 1000)
        self.command = tuple(command)

    async def run(self, stop: asyncio.Event) -> None:
        """A round every interval, the first one interval after the start (a service that
        restarts in a loop must not train in a loop), until ``stop``."""
        while not stop.is_set():
            await sleep_or_stop(stop, self.interval_s)
            if not stop.is_set():
                await self.round(stop)

    async def round(self, stop: asyncio.Event) -> Outcome | None:
        """One training under the lock; None when another replica holds it (or ``stop``
        came first). Never raises: a failed round waits for the next one."""
        token = uuid.uuid4().hex
        try:
            if not await self.registry.lock_training(token, self.lock_ttl_ms):
                log.info("recommendations: another replica is training; none this round")
                return None
            keeper = asyncio.ensure_future(self._keep_lock(token))
            try:
                outcome = await self._train(stop)
            finally:
                await tasks.stop(keeper)
                await self.registry.unlock_training(token)
        except Exception:
            log.warning("recommendations: scheduled training failed", exc_info=True)
            outcome = "failed"
        if outcome is not None:
            observability.RECS_TRAINING_RUNS.labels(outcome).inc()
        return outcome

    async def _keep_lock(self, token: str) -> None:
        while True:
            await asyncio.sleep(self.lock_ttl_ms / 3000)
            try:
                if not await self.registry.refresh_training(token, self.lock_ttl_ms):
                    log.warning("recommendations: the training lock was lost (it expired)")
                    return
            except Exception as exc:  # Redis away: try again; the lock may expire meanwhile
                log.warning("recommendations: the training lock not kept: %r", exc)

    async def _train(self, stop: asyncio.Event) -> Outcome | None:
        t0 = time.monotonic()
        try:
            finished = await self._child(stop)
        finally:
            observability.RECS_TRAINING_SECONDS.set(time.monotonic() - t0)
        if finished is None:
            if stop.is_set():
                log.info("recommendations: training stopped with the service")
                return None
            log.warning("recommendations: training killed after %.0f s", self.timeout_s)
            return "failed"
        code, out, err = finished
        lines = out.strip().splitlines()
        try:
            summary = msgspec.json.decode(lines[-1] if lines else b"", type=Summary)
        except msgspec.DecodeError:
            summary = Summary()
        if summary.skipped:
            log.info("recommendations: nothing to train this round: %s", summary.skipped)
            return "skipped"
        if code != 0 or not summary.version:
            tail = err.decode(errors="replace").strip().splitlines()[-5:]
            log.warning("recommendations: training exited %d: %s", code, " | ".join(tail))
            return "failed"
        return await self._promote(summary)

    async def _child(self, stop: asyncio.Event) -> tuple[int, bytes, bytes] | None:
        """The command's exit status and output; None when it was killed (timeout, stop)."""
        pipe = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.DEVNULL, stdout=pipe, stderr=pipe,
            # a service killed with SIGKILL takes its training with it
            preexec_fn=functools.partial(die_with_parent, signal.SIGKILL, os.getpid()),
        )  # fmt: skip
        done = asyncio.ensure_future(proc.communicate())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({done, stopped}, timeout=self.timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if not done.done():
                return None
            out, err = done.result()
            return await proc.wait(), out, err
        finally:
            stopped.cancel()
            if proc.returncode is None:  # timed out, stopped, or this task was cancelled
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await done  # the child reaped (no zombie), its pipes closed

    async def _promote(self, new: Summary) -> Outcome:
        active = await self.registry.active()
        active_metrics: dict[str, float] | None = None
        if active is not None:
            meta = await self.registry.meta(active) or {}
            active_metrics = msgspec.convert(meta.get("metrics", {}), dict[str, float])
        promote, why = rules.promotion(new.metrics, active_metrics)
        if not promote:
            log.info("recommendations: trained %s, kept, not promoted: %s", new.version, why)
            return "kept"
        await self.registry.promote(new.version)
        log.info("recommendations: trained and promoted %s (was %s): %s", new.version, active, why)
        return "promoted"
