"""Search use cases: the per-worker index kept in step with the catalog (rebuilt from
PostgreSQL at start, then following ``catalog.v1``), and the search itself with a per-worker
result cache (docs/search.md, ADR 0011).

Convergence: the follower notes the end of every ``catalog.v1`` partition *before* reading
the catalog, then applies every event from there. An event already reflected in the
snapshot is recognised by the product's ``version`` (or the SKU's ``stock_version``) and
skipped, so the index ends equal to the database whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Final, Protocol

import msgspec

from nexuscart import events
from nexuscart.adapters.search_index import Facets, Hit, SearchIndex
from nexuscart.domain import search as rules
from nexuscart.domain.search import ProductRow, SearchDoc, SearchQuery

log = logging.getLogger("nexuscart.search")

SEEN_IDS_MAX: Final = 100_000  # event ids remembered for dedup (versions guard the rest)
CACHE_MAX: Final = 10_000  # cached answers per worker (a few KB each: ~40 MB at most)
REBUILD_CHUNK: Final = 5_000  # products per index commit during a rebuild


class NotReady(Exception):
    """The index has not been built yet (the worker just started): 503, retry shortly."""


class PoisonEvent(ValueError):
    """An event that can never be applied (it contradicts itself): dead-lettered."""


class SearchPage(msgspec.Struct, frozen=True):
    total: int  # matches of the whole query (all pages)
    items: list[Hit]
    facets: Facets
    next_cursor: str | None
    corrected: list[str]  # query words as searched after typo correction (empty: none)


class CatalogSource(Protocol):
    """What a rebuild reads: the category tree and every active product with its variants."""

    async def category_parents(self) -> dict[int, int | None]: ...

    def active_products(self, page: int) -> AsyncIterator[list[ProductRow]]: ...


class _Sku(msgspec.Struct):
    product_id: int
    stock: int
    stock_version: int


class Search:
    """The index of one worker and what keeps it right. Methods that change it are called
    by one task at a time (the rebuild, then the follower)."""

    def __init__(self, index: SearchIndex | None = None) -> None:
        self.index = index or SearchIndex()
        self.ready = False
        self.parents: dict[int, int | None] = {}
        self.versions: dict[int, int] = {}  # product id -> last version applied (any status)
        self.docs: dict[int, SearchDoc] = {}  # the active products, as indexed
        self.skus: dict[str, _Sku] = {}
        self.product_skus: dict[int, tuple[str, ...]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._cache: dict[str, bytes] = {}
        self._cache_gen = -1
        self.applied = 0  # events applied (not skipped), for tests and logs

    # --- documents ------------------------------------------------------------------------

    def category_path(self, category_id: int) -> tuple[int, ...]:
        path = [category_id]
        parent = self.parents.get(category_id)
        while parent is not None and parent not in path and len(path) < 32:
            path.append(parent)
            parent = self.parents.get(parent)
        return tuple(path)

    def _doc(self, p: events.ProductData) -> SearchDoc | None:
        """The document of an active product with variants, else None (not searchable)."""
        if p.status != "active":
            return None
        skus = self.product_skus.get(p.product_id, ())
        variants = p.variants
        if not variants:
            return None
        attrs: dict[str, list[str]] = {k: [v] for k, v in p.attributes.items() if v}
        for v in variants:
            for k, val in v.attributes.items():
                if val and val not in attrs.setdefault(k, []):
                    attrs[k].append(val)
        cheapest = min(variants, key=lambda v: v.price_minor)
        in_stock = any(self.skus[s].stock > 0 for s in skus if s in self.skus)
        return SearchDoc(
            product_id=p.product_id,
            title=p.title,
            description=p.description,
            brand=p.brand,
            category_id=p.category_id,
            category_path=self.category_path(p.category_id),
            attributes=attrs,
            price_min=cheapest.price_minor,
            currency=cheapest.currency,
            in_stock=in_stock,
            created_at_ms=p.created_at_ms,
            version=p.version,
            popularity=p.popularity,
        )

    def take_product(
        self, p: events.ProductData, stocks: Iterable[tuple[str, int, int | None]]
    ) -> SearchDoc | None:
        """Record a product's state (version, SKUs and their stock) and return its document
        (None: drop it from the index)."""
        self.versions[p.product_id] = p.version
        skus: list[str] = []
        for sku, stock, stock_version in stocks:
            skus.append(sku)
            known = self.skus.get(sku)
            if known is None:
                self.skus[sku] = _Sku(p.product_id, stock, stock_version or 0)
            elif stock_version is None or stock_version >= known.stock_version:
                # a product event carries the stock as it was written, in the partition's
                # order; only a versioned reading that is older is ignored
                known.stock = stock
                known.product_id = p.product_id
                if stock_version is not None:
                    known.stock_version = stock_version
        for gone in set(self.product_skus.get(p.product_id, ())) - set(skus):
            self.skus.pop(gone, None)
        self.product_skus[p.product_id] = tuple(skus)
        doc = self._doc(p)
        if doc is None:
            self.docs.pop(p.product_id, None)
        else:
            self.docs[p.product_id] = doc
        return doc

    # --- rebuild --------------------------------------------------------------------------

    async def rebuild(self, source: CatalogSource, page: int = 2_000) -> int:
        """Index every active product of the catalog into a new index, then swap it in (a
        rebuild after a restart of the follower never shows a half-built index); returns
        how many products it indexed."""
        fresh = Search()
        fresh.parents = await source.category_parents()
        pending: list[SearchDoc] = []
        n = 0
        async for rows in source.active_products(page):
            for row in rows:
                stocks = [(v.sku, v.stock, v.stock_version) for v in row.variants]
                variants = [
                    events.VariantData(v.sku, v.price_minor, v.currency, v.attributes, 0, v.stock)
                    for v in row.variants
                ]
                p = msgspec.structs.replace(row.product, variants=variants)
                doc = fresh.take_product(p, stocks)
                if doc is not None:
                    pending.append(doc)
            if len(pending) >= REBUILD_CHUNK:
                n += len(pending)
                # off the event loop: indexing thousands of documents takes a while
                await asyncio.to_thread(fresh.index.apply, pending)
                pending = []
        if pending:
            n += len(pending)
            await asyncio.to_thread(fresh.index.apply, pending)
        # one synchronous swap: searches (same event loop) see the old state or the new
        self.index, self.parents, self.versions = fresh.index, fresh.parents, fresh.versions
        self.docs, self.skus, self.product_skus = fresh.docs, fresh.skus, fresh.product_skus
        self.ready = True
        return n

    # --- following catalog.v1 -------------------------------------------------------------

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > SEEN_IDS_MAX:
            self._seen.popitem(last=False)
        return True

    def plan(self, envelopes: Sequence[events.CatalogEnvelope]) -> tuple[list[SearchDoc], set[int]]:
        """Fold a batch of events into the state; returns the documents to (re)index and the
        products to drop. Idempotent: a repeated event id, an older product version or an
        older stock version changes nothing. Raises PoisonEvent for an event that
        contradicts itself (its key is not its product)."""
        upserts: dict[int, SearchDoc] = {}
        deletes: set[int] = set()
        for env in envelopes:
            data = env.data
            pid = data.product.product_id if hasattr(data, "product") else data.product_id
            if env.key != str(pid):
                raise PoisonEvent(f"event {env.id}: key {env.key!r} is not product {pid}")
            if not self._first_time(str(env.id)):
                continue
            if isinstance(
                data, events.ProductCreated | events.ProductUpdated | events.ProductArchived
            ):
                p = data.product
                if p.version <= self.versions.get(pid, 0):
                    continue  # already reflected (the snapshot, or a redelivery)
                if p.category_id not in self.parents:
                    log.info("search: product %d in category %d not loaded", pid, p.category_id)
                stocks = [(v.sku, v.stock, None) for v in p.variants]
                doc = self.take_product(p, stocks)
            elif isinstance(data, events.StockAdjusted):
                known = self.skus.get(data.sku)
                if known is None or known.product_id != pid:
                    continue  # not an indexed SKU (a draft product's, or one removed)
                if data.stock_version <= known.stock_version:
                    continue
                known.stock = data.stock_after
                known.stock_version = data.stock_version
                old = self.docs.get(pid)
                if old is None:
                    continue
                in_stock = any(
                    self.skus[s].stock > 0 for s in self.product_skus[pid] if s in self.skus
                )
                if in_stock == old.in_stock:
                    self.applied += 1
                    continue
                doc = msgspec.structs.replace(old, in_stock=in_stock)
                self.docs[pid] = doc
            else:  # StockLow: nothing the index shows
                continue
            self.applied += 1
            if doc is None:
                upserts.pop(pid, None)
                deletes.add(pid)
            else:
                deletes.discard(pid)
                upserts[pid] = doc
        return list(upserts.values()), deletes

    async def apply(self, envelopes: Sequence[events.CatalogEnvelope]) -> None:
        upserts, deletes = self.plan(envelopes)
        if upserts or deletes:
            await asyncio.to_thread(self.index.apply, upserts, deletes)

    # --- searching ------------------------------------------------------------------------

    def cached(self, key: str) -> bytes | None:
        if self._cache_gen != self.index.generation:
            return None
        return self._cache.get(key)

    def remember(self, key: str, body: bytes) -> None:
        gen = self.index.generation
        if self._cache_gen != gen:
            self._cache.clear()
            self._cache_gen = gen
        if len(self._cache) >= CACHE_MAX:
            del self._cache[next(iter(self._cache))]  # the oldest
        self._cache[key] = body

    def search(self, query: SearchQuery) -> SearchPage:
        if not self.ready:
            raise NotReady
        words = self.index.words(query.q)
        fixed = [self.index.correct(w) or w for w in words]
        # facets describe the match set, the same on every page: the first page has them
        result = self.index.search(query, facets=query.offset == 0)
        return SearchPage(
            total=result.total,
            items=result.hits,
            facets=result.facets,
            next_cursor=rules.next_cursor(query, result.total),
            corrected=fixed if fixed != words else [],
        )

    def search_json(self, query: SearchQuery) -> bytes:
        return _encoder.encode(self.search(query))


_encoder: Final = msgspec.json.Encoder()
