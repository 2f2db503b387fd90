"""Recommendation use cases: the live signals the service applies from Kafka
(docs/recommendations.md).

Exact signals: orders (StockReserved, OrderPlaced), refunds (PaymentRefunded) and
add-to-carts; sampled: product views (the edge batches them per worker and may lose a
batch with its worker).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import msgspec

from nexuscart import events
from nexuscart.adapters.recs_store import RecsStore, Signal

AnyEvent = events.Event | events.CatalogEvent | events.InteractionEvent


class RecsEnvelope(msgspec.Struct, frozen=True):
    """An envelope of orders.v1, catalog.v1 or interactions.v1: the topics the service
    reads (their event tags are distinct)."""

    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    key: str
    data: AnyEvent


_decoder: Final = msgspec.json.Decoder(RecsEnvelope)
TOPICS: Final = (events.ORDERS_TOPIC, events.CATALOG_TOPIC, events.INTERACTIONS_TOPIC)


def decode(raw: bytes) -> RecsEnvelope:
    return _decoder.decode(raw)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class RecsSignals:
    def __init__(self, store: RecsStore) -> None:
        self.store = store
        self.unknown_skus = 0  # flash-sale orders of SKUs catalog.v1 never named

    async def handle(self, batch: Sequence[RecsEnvelope]) -> None:
        items = [
            (
                e.data.product.product_id,
                e.data.product.category_id,
                e.data.product.status,
                [v.sku for v in e.data.product.variants],
            )
            for e in batch
            if isinstance(
                e.data, events.ProductCreated | events.ProductUpdated | events.ProductArchived
            )
        ]
        if items:
            await self.store.put_items(items)
        skus = [e.data.sku for e in batch if isinstance(e.data, events.StockReserved)]
        sku_pid = dict(zip(skus, await self.store.products_of_skus(skus), strict=True))
        pending: list[tuple[RecsEnvelope, list[int]]] = []
        refunds: list[RecsEnvelope] = []
        for e in batch:
            d = e.data
            if isinstance(d, events.OrderPlaced):
                pending.append((e, [ln.product_id for ln in d.lines]))
            elif isinstance(d, events.StockReserved):
                pid = sku_pid.get(d.sku)
                if pid is None:
                    self.unknown_skus += 1
                else:
                    pending.append((e, [pid]))
            elif isinstance(d, events.ProductViewed | events.AddedToCart):
                pending.append((e, [d.product_id]))
            elif isinstance(d, events.PaymentRefunded):
                refunds.append(e)
        cats = await self.store.categories([p for _, ps in pending for p in ps])
        signals: list[Signal] = []
        at = 0
        for e, pids in pending:
            c = cats[at : at + len(pids)]
            at += len(pids)
            d = e.data
            if isinstance(d, events.ProductViewed):
                s = Signal(str(e.id), "view", d.at_ms, d.user_id, pids, c)
            elif isinstance(d, events.AddedToCart):
                s = Signal(str(e.id), "cart", d.at_ms, d.user_id, pids, c)
            elif isinstance(d, events.OrderPlaced | events.StockReserved):
                s = Signal(str(e.id), "order", _ms(e.occurred_at), d.user_id, pids, c,
                           d.order_id)  # fmt: skip
            else:
                continue
            signals.append(s)
        await self.store.apply(signals)
        for e in refunds:
            assert isinstance(e.data, events.PaymentRefunded)
            await self.store.refund(str(e.id), e.data.order_id)
