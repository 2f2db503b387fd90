"""Recommendation use cases: the live signals the service applies from Kafka
(docs/recommendations.md).

Exact signals: orders (StockReserved, OrderPlaced), refunds (PaymentRefunded) and
add-to-carts; sampled: product views (the edge batches them per worker and may lose a
batch with its worker).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence, Set
from datetime import datetime
from typing import Any, Final

import msgspec

from nexuscart import events
from nexuscart.adapters.recs_store import Item, RecsStore, Served, Signal
from nexuscart.app.errors import redis_errors

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
    def __init__(self, store: RecsStore, consumable_categories: Set[int] = frozenset()) -> None:
        self.store = store
        self.consumable = consumable_categories
        self.unknown_skus = 0  # flash-sale orders of SKUs catalog.v1 never named

    async def handle(self, batch: Sequence[RecsEnvelope]) -> None:
        items = [
            Item(
                e.data.product.product_id,
                e.data.product.category_id,
                e.data.product.status,
                [v.sku for v in e.data.product.variants],
                e.data.product.category_id in self.consumable,
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


# --- serving ---------------------------------------------------------------------------------


class Contribution(msgspec.Struct, frozen=True):
    feature: str
    value: float  # the feature's share of the item's ranker score (TreeSHAP)


class Recommendation(msgspec.Struct, frozen=True):
    product_id: int
    score: float
    reason: str
    contributions: list[Contribution] | None = None


class Recommendations(msgspec.Struct, frozen=True):
    items: list[Recommendation]
    model_version: str | None
    context: str


class ModelInfo(msgspec.Struct, frozen=True):
    version: str
    active: bool
    metrics: dict[str, float]
    data: dict[str, float | str]  # what it was trained on (SYNTHETIC: labelled so)


class ModelList(msgspec.Struct, frozen=True):
    active: str | None
    models: list[ModelInfo]


class ModelChange(msgspec.Struct, frozen=True):
    active: str | None
    previous: str | None


_REASONS: Final = {
    "cobuy": "bought together with {seed}",
    "covis": "viewed together with {seed}",
    "trend": "popular in this category now",
}
POOL_LEAF_LEAVES: Final = 2  # the shopper's favourite leaves whose bestsellers join the pool
POOL_POPULAR: Final = 20
EXPLAIN_TOP: Final = 3


class Recommender:
    """Answers from the active model (held per process, reloaded when the pointer in Redis
    changes) blended with the live signals of one Redis call (``RecsStore.serve``)."""

    def __init__(self, store: RecsStore, registry: Any, poll_s: float = 1.0) -> None:
        self.store = store
        self.registry = registry
        self.poll_s = poll_s
        self.model: Any = None  # services.recommendations.serving.Loaded, or None

    async def follow(self) -> None:
        """Poll the active-version pointer; load a new version off the event loop."""
        from services.recommendations import serving

        log = logging.getLogger("nexuscart.recommendations")
        while True:
            try:
                version = await self.registry.active()
                current = self.model.version if self.model is not None else None
                if version != current:
                    self.model = (
                        None
                        if version is None
                        else await asyncio.to_thread(serving.load, self.registry, version)
                    )
                    log.info("recommendation model %s active", version)
            except Exception as exc:  # keep serving the model it has
                log.warning("recommendation model check failed: %r", exc)
            await asyncio.sleep(self.poll_s)

    async def for_user(
        self, user_id: int, k: int, context_product: int, explain: bool, context: str
    ) -> Recommendations:
        model = self.model
        pool = model.pool_for(user_id) if model is not None else []
        with redis_errors():
            served = await self.store.serve(user_id, context_product, pool, want=k * 3)
        return self._answer(model, user_id, served, k, explain, context, context_product)

    async def similar(self, product_id: int, k: int) -> Recommendations:
        with redis_errors():
            served = await self.store.serve(0, product_id, [], want=k * 2)
        items = sorted(served.items, key=lambda x: (-(2 * x[2] + x[1]), -x[3], x[0]))[:k]
        out = [
            Recommendation(pid, 2 * cobuy + covis + trend, _reason(cobuy, covis, product_id))
            for pid, covis, cobuy, trend in items
        ]
        version = self.model.version if self.model is not None else None
        return Recommendations(out, version, f"product:{product_id}")

    def _answer(
        self, model: Any, user_id: int, served: Served, k: int, explain: bool, context: str,
        context_product: int,
    ) -> Recommendations:  # fmt: skip
        seed = context_product or (served.recent[0] if served.recent else 0)
        if model is None or not served.items:
            items = sorted(served.items, key=lambda x: (-(2 * x[2] + x[1] + x[3]), x[0]))[:k]
            return Recommendations(
                [Recommendation(p, 2 * b + c + t, _reason(b, c, seed)) for p, c, b, t in items],
                None if model is None else model.version,
                context,
            )
        ranked = model.rank(user_id, served.recent, served.items, explain, k)
        out = []
        for pid, score, contribs in ranked[:k]:
            live = next(x for x in served.items if x[0] == pid)
            reason = _reason(live[2], live[1], seed) if live[1] or live[2] else (
                _REASONS["trend"] if live[3] else model.reason(contribs)
            )  # fmt: skip
            out.append(Recommendation(pid, score, reason, contribs))
        return Recommendations(out, model.version, context)


def _reason(cobuy: float, covis: float, seed: int) -> str:
    name = f"product {seed}" if seed else "your recent items"
    if cobuy > 0:
        return _REASONS["cobuy"].format(seed=name)
    if covis > 0:
        return _REASONS["covis"].format(seed=name)
    return _REASONS["trend"]
