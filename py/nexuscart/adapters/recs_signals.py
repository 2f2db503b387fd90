"""The edge's shopper signals for the recommendations, published on interactions.v1
(docs/recommendations.md).

Hot path: ``view`` appends a tuple to this worker's buffer (no I/O, no token check: the
raw Authorization header is kept and verified in the flush, off the request). A background
task flushes every FLUSH_S: it verifies the tokens (an invalid one makes the view
anonymous), puts the flush's views in one ``ProductsViewed`` record and its add-to-carts in
one ``AddedToCarts``, and hands them to an idempotent Kafka producer.

Which signals are exact: add-to-carts are kept whatever the view buffer holds and sent
within FLUSH_S (lost only if the worker dies in that time, or Kafka stays down until
OUTBOX_MAX records wait). Views are sampled: beyond VIEWS_MAX views in one flush interval the
rest are dropped (counted), and a worker's unsent buffer dies with it. A Kafka record per
view cost a worker more CPU than serving the page (a cProfile of a page storm: 5.2 s for 30k
views sent against 3.3 s for the pages; py-spy, later: 12% of a worker), hence one record
per flush.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import msgspec
from aiokafka import AIOKafkaProducer

from nexuscart import events
from nexuscart.config import KafkaSettings

FLUSH_S: Final = 0.2
# per flush interval and worker: at most 1,000 views/s per worker reach interactions.v1,
# plenty for co-visitation and trending
VIEWS_MAX: Final = 200
# records (a flush's add-to-carts, its views) waiting for Kafka per worker: at five flushes a
# second, over half an hour of Kafka being down
OUTBOX_MAX: Final = 10_000
# while this many records wait (Kafka down), a flush's views are dropped rather than queued:
# they are samples, and a batch is up to VIEWS_MAX views
VIEWS_BACKLOG_MAX: Final = 10
_encoder: Final = msgspec.json.Encoder()
log = logging.getLogger("nexuscart.recs_signals")


class SignalPublisher:
    def __init__(
        self,
        kafka: KafkaSettings,
        principal: Callable[[str | None], tuple[int, int]],
        producer: Callable[[KafkaSettings, str], AIOKafkaProducer],
        on_dropped: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.kafka = kafka
        self.principal = principal
        self._make = producer
        self.on_dropped = on_dropped  # told, once per flush, the views dropped (a metric)
        # the records' Kafka key: one per worker, so that workers' batches spread over the
        # partitions (a batch names many shoppers: no user id fits it)
        self.key = str(random.randrange(1, 2**31))
        self.views: list[tuple[int, str | None, float]] = []
        self.carts: list[events.AddedToCart] = []
        self.dropped_views = 0  # since the last flush
        self.sent = 0
        self._outbox: list[tuple[bytes, bytes]] = []  # encoded, not yet handed to Kafka
        self._ids = events.EventIds()

    def view(self, product_id: int, authorization: str | None) -> None:
        """Hot path: a product page was served."""
        if len(self.views) < VIEWS_MAX:
            self.views.append((product_id, authorization, time.time()))
        else:
            self.dropped_views += 1

    def added_to_cart(self, user_id: int, product_id: int, sku: str, quantity: int) -> None:
        self.carts.append(
            events.AddedToCart(user_id, product_id, sku, quantity, int(time.time() * 1000))
        )

    def _user(self, authorization: str | None) -> int | None:
        if authorization is None:
            return None
        try:
            return self.principal(authorization)[0]
        except Exception:  # an invalid token: the view stays anonymous
            return None

    def _envelopes(self) -> list[tuple[bytes, bytes]]:
        """The flush's views in one ``ProductsViewed`` record, its add-to-carts in one
        ``AddedToCarts``: a Kafka record each cost the edge and Kafka more than the signal."""
        views, self.views = self.views, []
        carts, self.carts = self.carts, []
        now = datetime.now(UTC)
        data: list[events.InteractionEvent] = []
        if len(self._outbox) >= VIEWS_BACKLOG_MAX:
            self.dropped_views += len(views)
        elif views:
            batch = [events.View(self._user(a), pid, int(at * 1000)) for pid, a, at in views]
            data.append(events.ProductsViewed(batch))
        if carts:
            data.append(events.AddedToCarts(carts))
        key = self.key
        return [
            (key.encode(), _encoder.encode(_Env(self._ids(), type(d).__name__, 1, now, key, d)))
            for d in data
        ]

    def _tell_dropped(self) -> None:
        if self.dropped_views:
            self.on_dropped(self.dropped_views)
            self.dropped_views = 0

    async def run(self) -> None:
        producer: AIOKafkaProducer | None = None
        try:
            while True:
                await asyncio.sleep(FLUSH_S)
                if self.views or self.carts:
                    self._outbox += self._envelopes()
                if len(self._outbox) > OUTBOX_MAX:  # Kafka down for long: the oldest go
                    over = len(self._outbox) - OUTBOX_MAX
                    log.warning("interactions: Kafka down too long, %d records dropped", over)
                    del self._outbox[:over]
                self._tell_dropped()
                if not self._outbox:
                    continue
                try:
                    if producer is None:
                        p = self._make(self.kafka, "edge-signals")
                        await p.start()
                        producer = p
                    done = 0
                    try:
                        for key, value in self._outbox:
                            await producer.send(events.INTERACTIONS_TOPIC, value, key=key)
                            done += 1
                    finally:
                        del self._outbox[:done]
                        self.sent += done
                except Exception as exc:  # Kafka down: the records wait (capped)
                    log.warning("interactions publish failed, retrying: %r", exc)
        finally:
            if producer is not None:
                await producer.stop()


class _Env(msgspec.Struct, frozen=True):
    id: str
    type: str
    version: int
    occurred_at: datetime
    key: str
    data: events.InteractionEvent
