"""The payments service's webhook loop: applies what the edge recorded in the webhook inbox
(adapters/payments_inbox.py, ADR 0021), at least once, never skipping.

Entries leave the inbox only after their transaction committed (or, for an entry that can
never apply, after it is in the dead-letter stream). Any number of services can run: each
reads new entries as its own consumer of one group and, every ``claim_every_s``, takes over
the entries another consumer has held unacknowledged for ``claim_idle_ms`` (a service that
died mid-batch), then deletes the consumers idle as long that hold nothing. ``run`` applies
at most ``max_rate`` entries/s: a burst waits in the inbox (ADR 0023). The database
records each provider event id once, so an entry applied twice (a slow consumer and its
successor) changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from nexuscart import observability
from nexuscart.adapters.payments_inbox import InboxEntry, WebhookInbox
from nexuscart.app.payments import Payments
from services.runtime import consumer_name, is_transient, sleep_or_stop

log = logging.getLogger("nexuscart.payments.inbox")


def pause_s(applied: int, took_s: float, max_rate: float) -> float:
    """How long to wait after a batch of ``applied`` entries that took ``took_s`` so that a
    loop applies ``max_rate`` entries/s at most (0: no limit). A sleep per batch, not a token
    bucket: one loop, nothing shared to limit."""
    if max_rate <= 0 or applied == 0:
        return 0.0
    return max(0.0, applied / max_rate - took_s)


class WebhookApplier:
    def __init__(
        self,
        payments: Payments,
        inbox: WebhookInbox,
        consumer: str | None = None,
        batch: int = 1_000,
        block_ms: int = 200,
        claim_idle_ms: int = 5_000,
        claim_every_s: float = 2.0,
        max_rate: float = 0.0,
    ):
        self.payments = payments
        self.inbox = inbox
        self.consumer = consumer or consumer_name()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s
        self.max_rate = max_rate  # entries/s at most; 0: unpaced
        self._joined = False
        self._recovered = True  # a new consumer name holds nothing
        self._next_claim = 0.0

    async def run_once(self, wait: bool = True) -> list[tuple[str, str]]:
        """Apply one batch of new entries, waiting up to ``block_ms`` for one when ``wait``
        (and, when due, what this consumer holds after a failure and what others left
        behind); the outcome of each entry applied."""
        if not self._joined:
            await self.inbox.join()
            self._joined = True
        out: list[tuple[str, str]] = []
        if not self._recovered:
            while held := await self.inbox.read(self.consumer, self.batch, own_pending=True):
                out += await self._apply(held)
            self._recovered = True
        if time.monotonic() >= self._next_claim:
            async for page in self.inbox.claim(self.consumer, self.claim_idle_ms, self.batch):
                log.info("took over %d webhook inbox entries", len(page))
                out += await self._apply(page)
            await self.inbox.drop_idle_consumers(self.consumer, self.claim_idle_ms)
            self._next_claim = time.monotonic() + self.claim_every_s
        block_ms = self.block_ms if wait else None
        entries = await self.inbox.read(self.consumer, self.batch, block_ms=block_ms)
        return out + await self._apply(entries)

    async def _apply(self, entries: Sequence[InboxEntry]) -> list[tuple[str, str]]:
        try:
            out = await self.payments.apply_inbox(entries, is_transient)
        except BaseException:
            self._recovered = False  # re-read what this consumer holds: nothing is skipped
            raise
        for _, outcome in out:
            observability.PAYMENT_WEBHOOKS_APPLIED.labels(outcome).inc()
            if outcome == "dead":
                log.error("webhook inbox entry moved to the dead-letter stream")
        return out

    async def drain(self) -> list[tuple[str, str]]:
        """Apply until the inbox holds nothing new (tests): the outcomes."""
        out: list[tuple[str, str]] = []
        while got := await self.run_once(wait=False):
            out += got
        return out

    async def run(self, stop: asyncio.Event) -> None:
        log.info("applying webhooks as consumer %s (at most %g/s)", self.consumer, self.max_rate)
        while not stop.is_set():
            try:
                started = time.monotonic()
                applied = len(await self.run_once())
                observability.PAYMENT_INBOX_BACKLOG.set(await self.inbox.backlog())
                # paced: the work behind the inbox must leave the edge CPU to record the
                # next webhooks (a full machine slows Redis' fsyncs, ADR 0023)
                await sleep_or_stop(
                    stop, pause_s(applied, time.monotonic() - started, self.max_rate)
                )
            except Exception as exc:
                # the database or Redis down: the entries stay in the inbox, tried again
                log.warning("webhook inbox batch failed, retrying: %r", exc)
                await sleep_or_stop(stop, 0.5)
