"""Catalog use cases (docs/catalog.md): product writes by sellers and admins, audited stock
adjustments, and the public reads: product pages from a per-worker cache, categories,
listing and batch stock checks. Rules in ``domain.catalog``; storage in
``adapters.catalog_repo`` (PostgreSQL, the truth) and ``adapters.catalog_store`` (Redis:
live stock and the change stream that keeps every worker's cache fresh)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, NamedTuple

import msgspec
from async_lru import alru_cache

from nexuscart.adapters import catalog_repo as repo_mod
from nexuscart.adapters.catalog_repo import (
    CatalogRepo,
    Change,
    Product,
    Variant,
    VariantFields,
)
from nexuscart.adapters.catalog_store import CatalogStore, StockLevel
from nexuscart.app.errors import Refused, Unavailable, pg_errors, redis_errors
from nexuscart.domain import catalog as rules

__all__ = ["Catalog", "Refused", "Unavailable"]

log = logging.getLogger("nexuscart.catalog")

_encoder: Final = msgspec.json.Encoder()
CATEGORIES_TTL_S: Final = 60.0  # the tree changes with deployments, not with traffic

# -- wire shapes (requests) ------------------------------------------------------------
Attributes = dict[str, str]


class VariantCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sku: str
    price_minor: int
    currency: str
    attributes: Attributes = {}
    low_stock_threshold: int = 5


class ProductCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    category_id: int
    title: str
    variants: list[VariantCreate]
    description: str = ""
    brand: str = ""
    attributes: Attributes = {}
    images: list[str] = []
    status: str = "draft"
    # admins only: create for this seller (default: the caller); a PostgreSQL bigint
    seller_id: Annotated[int, msgspec.Meta(ge=1, le=(1 << 63) - 1)] | None = None


class ProductPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    category_id: int | None = None
    title: str | None = None
    description: str | None = None
    brand: str | None = None
    attributes: Attributes | None = None
    images: list[str] | None = None
    status: str | None = None


class VariantPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    price_minor: int | None = None
    currency: str | None = None
    attributes: Attributes | None = None
    low_stock_threshold: int | None = None


class StockAdjustment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    delta: int
    reason: str
    note: str = ""


# -- wire shapes (answers) -------------------------------------------------------------


class VariantView(msgspec.Struct, frozen=True):
    sku: str
    price_minor: int
    currency: str
    attributes: Attributes
    low_stock_threshold: int
    available: int
    stock_status: str


class CategoryRef(msgspec.Struct, frozen=True):
    category_id: int
    name: str
    slug: str


class ProductView(msgspec.Struct, frozen=True):
    product_id: int
    seller_id: int
    category_id: int
    category_path: list[CategoryRef]  # from the department down to the product's category
    title: str
    description: str
    brand: str
    attributes: Attributes
    images: list[str]
    status: str
    version: int
    variants: list[VariantView]
    created_at: dt.datetime
    updated_at: dt.datetime


class ProductSummary(msgspec.Struct, frozen=True):
    product_id: int
    category_id: int
    title: str
    brand: str
    image: str | None
    price_min_minor: int | None
    currency: str | None
    in_stock: bool


class ProductsPage(msgspec.Struct, frozen=True):
    items: list[ProductSummary]
    next_cursor: str | None


class CategoryNode(msgspec.Struct, frozen=True):
    category_id: int
    parent_id: int | None
    name: str
    slug: str
    children: list[CategoryNode]


class CategoryTree(msgspec.Struct, frozen=True):
    categories: list[CategoryNode]  # the departments, each with its subtree
    count: int


class StockView(msgspec.Struct, frozen=True):
    sku: str
    available: int
    status: str  # in_stock | low_stock | out_of_stock | unknown


class Inventory(msgspec.Struct, frozen=True):
    items: list[StockView]


class AdjustmentView(msgspec.Struct, frozen=True):
    adjustment_id: str
    product_id: int
    sku: str
    delta: int
    reason: str
    available: int
    stock_status: str


# -- the per-worker page cache ---------------------------------------------------------


class Shown(NamedTuple):
    """A page as answered with one set of stock levels: its ETag, body and headers."""

    etag: str
    body: bytes
    headers: list[tuple[str, str]]
    headers_304: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Page:
    """A product page, built once: the encoded body cut where each variant's live stock
    goes (``parts``), the Redis keys of that stock, and the answer as built (``built``:
    the levels read at build time). ``live``: the build read its levels from Redis, so a
    view reads them there again; otherwise (Redis failing) it shows PostgreSQL's."""

    product_id: int
    status: str
    seller_id: int
    body: bytes  # with the levels read at build time (what the cart reads offers from)
    etag: str
    headers: list[tuple[str, str]]
    headers_304: list[tuple[str, str]]
    expires_at: float  # monotonic
    parts: tuple[bytes, ...] = ()
    keys: list[bytes] = field(default_factory=list)
    thresholds: tuple[int, ...] = ()
    version: int = 0
    cache_control: str = ""
    live: bool = False
    # the last answer, reused while the stock values read stay the same
    memo: list[Any] = field(default_factory=list)
    shared: SharedPage | None = None  # what the build made, as the workers share it

    @property
    def built(self) -> Shown:
        return Shown(self.etag, self.body, self.headers, self.headers_304)


_MISSING: Final = Page(0, "missing", 0, b"", "", [], [], 0.0)  # cached "no such product"


class SharedPage(msgspec.Struct, array_like=True, frozen=True):
    """A page as the workers share it in Redis (``CatalogStore.share_page``): what a build
    from PostgreSQL makes, without the stock, which every view reads live anyway."""

    status: str
    seller_id: int
    version: int
    parts: list[bytes]
    skus: list[str]
    thresholds: list[int]


_BUILT: Final = 'source="built"'
_SHARED: Final = 'source="shared"'
_shared_encoder: Final = msgspec.msgpack.Encoder()
_shared_decoder: Final = msgspec.msgpack.Decoder(SharedPage)
# a variant's stock in the body as encoded at build time: an int no level reaches (the
# variant's index added) and an empty status, cut out and replaced per view
_MARK: Final = 1 << 60


def _stock_json(available: int, threshold: int) -> bytes:
    status = rules.stock_status(available, threshold)
    return b'"available":%d,"stock_status":"%s"' % (available, status.encode())


def _shown(page: Page, levels: Sequence[int]) -> Shown:
    """The page with these stock levels: the body's parts and each variant's stock."""
    parts, out = page.parts, [page.parts[0]]
    for i, (level, threshold) in enumerate(zip(levels, page.thresholds, strict=True)):
        out.append(_stock_json(level, threshold))
        out.append(parts[i + 1])
    etag = rules.etag(page.version, _stock_tag(levels))
    common = [("etag", etag), ("cache-control", page.cache_control)]
    return Shown(etag, b"".join(out), [("content-type", "application/json"), *common], common)


PUBLIC_CACHE_CONTROL: Final = "public, max-age=1"  # a CDN adds at most 1 s of staleness
LIST_TTL_S: Final = 1.0  # a listing's in_stock flags are at most this old (like a CDN's)
LIST_CACHE_MAX: Final = 4096  # listing pages per worker
STOCK_ITEMS_MAX: Final = 200_000  # GET /inventory items remembered per worker (~25 MB)
PRIVATE_CACHE_CONTROL: Final = "private, no-store"
FEED_BLOCK_MAX_MS: Final = 200  # the change feed's longest blocking read


class PageCache:
    """Product pages of this worker, keyed by product id, dropped when the product changes.

    Freshness: every committed write adds the product id to the Redis change stream; the
    worker's ChangeFeed drops the page on receipt (milliseconds); the outbox relay writes
    the entry again from the change's outbox row, so a writer that died after its commit
    still announces it. A page built from reads that began before a drop of the same product
    is not stored (``begin``/``put``), so a slow rebuild cannot resurrect a stale page. While
    the feed is not following (Redis down, start-up), the cache is off and every read is
    fresh. ``ttl_s`` is the last resort (an entry lost with Redis' own data)."""

    def __init__(self, ttl_s: float, max_entries: int):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.pages: dict[int, Page] = {}
        self.on = False
        self.epoch = 0  # +1 per drop; a build notes the epoch it began at
        self.dropped: dict[int, int] = {}  # product id -> the epoch at its last drop
        self.floor = 0  # builds begun before this epoch are never stored

    def get(self, product_id: int) -> Page | None:
        page = self.pages.get(product_id)
        if page is None:
            return None
        if page.expires_at < time.monotonic():
            del self.pages[product_id]
            return None
        return page

    def begin(self) -> int:
        return self.epoch

    def expiry(self) -> float:
        """When a page built now expires: within the last quarter of ``ttl_s``, spread so
        the pages cached at start are not all rebuilt in the same second."""
        return time.monotonic() + self.ttl_s * (0.75 + 0.25 * random.random())

    def unchanged_since(self, product_id: int, began: int) -> bool:
        """No drop of the product (nor of everything) since epoch ``began``."""
        return began >= self.floor and self.dropped.get(product_id, -1) < began

    def put(self, page: Page, began: int) -> None:
        if not self.on or not self.unchanged_since(page.product_id, began):
            return  # changed while it was being built
        if len(self.pages) >= self.max_entries:
            # drop the oldest insertion (dicts keep order): the popular pages come back
            self.pages.pop(next(iter(self.pages)))
        self.pages[page.product_id] = page

    def drop(self, product_id: int) -> None:
        # a build that began at this epoch or before read data older than the change
        self.pages.pop(product_id, None)
        self.dropped[product_id] = self.epoch
        self.epoch += 1
        if len(self.dropped) > 100_000:
            self.dropped.clear()
            self.floor = self.epoch  # every build under way now is refused instead

    def disable(self) -> None:
        self.on = False
        self.pages.clear()
        self.epoch += 1
        self.floor = self.epoch

    def enable(self) -> None:
        self.on = True


class ChangeFeed:
    """Follows the Redis change stream and drops changed products from this worker's
    cache; on a Redis failure the cache is cleared and switched off until the feed is
    back (whatever changed meanwhile is then read fresh)."""

    def __init__(self, store: CatalogStore, cache: PageCache, block_ms: int, retry_s: float = 0.5):
        self.store = store
        self.cache = cache
        # short blocking reads: a read times out (and clears the cache) only when the loop
        # lags by the client's timeout less this; a busy worker lagged past 1 s of 2 s
        self.block_ms = min(block_ms, FEED_BLOCK_MAX_MS)
        self.retry_s = retry_s
        self.following = asyncio.Event()

    async def run(self) -> None:
        failing = False
        while True:
            try:
                last = await self.store.changes_head()
                self.cache.enable()
                self.following.set()
                if failing:
                    log.warning("catalog change feed: Redis answers again; cache on")
                    failing = False
                while True:
                    last, ids = await self.store.read_changes(last, self.block_ms)
                    for pid in ids:
                        self.cache.drop(pid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.cache.disable()
                self.following.clear()
                if not failing:
                    log.warning("catalog change feed: %s: %s; cache off", type(exc).__name__, exc)
                    failing = True
                await asyncio.sleep(self.retry_s)


# -- helpers ---------------------------------------------------------------------------


def _stock_tag(levels: Sequence[int]) -> str:
    return f"{zlib.crc32(','.join(map(str, levels)).encode()):08x}"


def _fingerprint(body: ProductCreate, seller_id: int) -> str:
    return hashlib.sha256(_encoder.encode(body) + str(seller_id).encode()).hexdigest()


def _broken(exc: rules.RuleBroken) -> Refused:
    return Refused(422, "validation-error", "Request body failed validation", "; ".join(exc.errors))


def _not_found(detail: str = "no such product") -> Refused:
    return Refused(404, "not-found", "Not found", detail)


def _stale(current: Product) -> Refused:
    return Refused(
        412,
        "precondition-failed",
        "The product changed since you read it",
        f"If-Match is stale: the product is at version {current.version}",
    )


def _check_variant(errors: list[str], v: VariantFields, prefix: str = "") -> None:
    rules.check_variant(
        errors,
        sku=v.sku,
        price_minor=v.price_minor,
        currency=v.currency,
        attributes=v.attributes,
        low_stock_threshold=v.low_stock_threshold,
        prefix=prefix,
    )


def _change_of(p: Product) -> Change:
    return Change(
        title=p.title,
        description=p.description,
        brand=p.brand,
        category_id=p.category_id,
        attributes=dict(p.attributes),
        images=list(p.images),
        status=p.status,
    )


def _check_change(c: Change) -> None:
    errors: list[str] = []
    rules.check_product(
        errors,
        title=c.title,
        description=c.description,
        brand=c.brand,
        attributes=c.attributes,
        images=c.images,
        status=c.status,
    )
    rules.raise_if(errors)


@dataclass(frozen=True)
class Caller:
    user_id: int
    is_admin: bool


# -- the use cases ---------------------------------------------------------------------


class Catalog:
    def __init__(
        self,
        repo: CatalogRepo,
        store: CatalogStore,
        cache: PageCache,
        on_stock_low: Callable[[], None] = lambda: None,
        on_page_built: Callable[[str], None] = lambda _: None,
    ):
        self.repo = repo
        self.store = store
        self.cache = cache
        self.on_stock_low = on_stock_low  # the metric
        # the metric of pages this worker did not have: 'source="shared"' or 'source="built"'
        self.on_page_built = on_page_built
        self._categories: dict[int, repo_mod.Category] = {}
        self._children: dict[int, list[int]] = {}
        self._tree_body: bytes = b""
        self._categories_at = -1e9
        self._categories_lock = asyncio.Lock()
        # product id -> (cache epoch when it began, the build) for the builds under way
        self._building: dict[int, tuple[int, asyncio.Future[Page]]] = {}
        # listing pages of this worker, keyed with the page cache's epoch, which every
        # product change moves on: a change is seen at once, and a busy listing is read from
        # PostgreSQL once per LIST_TTL_S at most, by one request while the others wait on it
        self._listing = alru_cache(maxsize=LIST_CACHE_MAX, ttl=LIST_TTL_S)(self._list_body)
        # SKU -> (its stock value, its held value as read, its GET /inventory item)
        self._stock_items: dict[str, tuple[bytes | None, bytes | None, bytes]] = {}

    # -- categories -------------------------------------------------------------------

    async def _load_categories(self) -> None:
        if time.monotonic() - self._categories_at < CATEGORIES_TTL_S:
            return
        async with self._categories_lock:
            if time.monotonic() - self._categories_at < CATEGORIES_TTL_S:
                return
            with pg_errors():
                cats = await self.repo.categories()
            by_id = {c.category_id: c for c in cats}
            children: dict[int, list[int]] = {}
            for c in sorted(cats, key=lambda c: (c.position, c.category_id)):
                if c.parent_id is not None:
                    children.setdefault(c.parent_id, []).append(c.category_id)

            def node(cid: int) -> CategoryNode:
                c = by_id[cid]
                kids = [node(k) for k in children.get(cid, ())]
                return CategoryNode(c.category_id, c.parent_id, c.name, c.slug, kids)

            roots = sorted(
                (c for c in cats if c.parent_id is None), key=lambda c: (c.position, c.category_id)
            )
            tree = CategoryTree([node(c.category_id) for c in roots], len(cats))
            self._categories, self._children = by_id, children
            self._tree_body = _encoder.encode(tree)
            self._categories_at = time.monotonic()

    async def categories_body(self) -> bytes:
        await self._load_categories()
        return self._tree_body

    async def category_subtree(self, category_id: int) -> list[int] | None:
        await self._load_categories()
        if category_id not in self._categories:
            return None
        return rules.subtree(self._children, category_id)

    async def _require_category(self, category_id: int) -> None:
        await self._load_categories()
        if category_id not in self._categories:
            self._categories_at = -1e9  # maybe new since the last load: look again
            await self._load_categories()
        if category_id not in self._categories:
            raise Refused(422, "unknown-category", "No such category", f"category_id {category_id}")

    def _path(self, category_id: int) -> list[CategoryRef]:
        out: list[CategoryRef] = []
        c = self._categories.get(category_id)
        while c is not None and len(out) < 16:
            out.append(CategoryRef(c.category_id, c.name, c.slug))
            c = self._categories.get(c.parent_id) if c.parent_id is not None else None
        return out[::-1]

    # -- stock ------------------------------------------------------------------------

    async def _levels(self, variants: Sequence[Variant]) -> list[int]:
        return (await self._levels_live(variants))[0]

    async def _levels_live(self, variants: Sequence[Variant]) -> tuple[list[int], bool]:
        """Live stock of the variants (Redis; PostgreSQL's value where Redis has none,
        written back, or for all of them while Redis is down), and whether Redis answered."""
        if not variants:
            return [], True
        try:
            with redis_errors():
                levels = await self.store.levels([v.sku for v in variants])
        except Unavailable:
            # PostgreSQL's stock is the truth: a page stays correct while Redis is down
            return [v.stock for v in variants], False
        out: list[int] = []
        missing: list[tuple[str, StockLevel]] = []
        for v, lv in zip(variants, levels, strict=True):
            if lv is None:
                missing.append((v.sku, StockLevel(v.stock_version, v.stock, v.low_stock_threshold)))
                out.append(v.stock)
            else:
                out.append(lv.stock)
        if missing:
            with contextlib.suppress(Unavailable), redis_errors():
                await self.store.set_levels(missing)  # best effort: the answer stands
        return out, True

    async def inventory(self, skus: Sequence[str]) -> bytes:
        """The stock check's answer (``Inventory`` as JSON) for valid SKUs (the pattern of
        ``rules.SKU_PATTERN``: nothing in a SKU needs escaping in JSON). One MGET, shared
        with the other reads of this event-loop tick; PostgreSQL for SKUs Redis lacks."""
        n = len(skus)
        with redis_errors():
            raw = await self.store.raw(self.store.keys(skus))
        # a SKU's item is formatted once per value read: the worker's copies hand back the
        # same bytes objects until Redis pushes a change, so identity is "unchanged"
        memo = self._stock_items
        held = raw[n:] or [None] * n  # the checkout's counters, when the store reads them
        items: list[bytes] = []
        todo: list[int] = []
        for i, sku in enumerate(skus):
            hit = memo.get(sku)
            if hit is not None and hit[0] is raw[i] and hit[1] is held[i]:
                items.append(hit[2])
            else:
                items.append(b"")
                todo.append(i)
        if todo:
            await self._stock_items_of(skus, raw[:n], held, todo, items)
        return b'{"items":[' + b",".join(items) + b"]}"

    async def _stock_items_of(
        self, skus: Sequence[str], raw: list[bytes | None], held: list[bytes | None],
        todo: list[int], items: list[bytes],
    ) -> None:  # fmt: skip
        """The items of ``skus[i]`` for i in ``todo`` from their values (``raw``, ``held``),
        PostgreSQL for those Redis lacks; remembered by value."""
        part = [raw[i] for i in todo]
        if self.store.held is not None:
            part += [held[i] for i in todo]
        levels = self.store.parse(part, len(todo))
        found: dict[str, Variant] = {}
        if None in levels:
            misses = [skus[i] for i, lv in zip(todo, levels, strict=True) if lv is None]
            with pg_errors():
                found = await self.repo.stock_by_sku(misses)
            if found:
                with redis_errors():
                    await self.store.set_levels(
                        (v.sku, StockLevel(v.stock_version, v.stock, v.low_stock_threshold))
                        for v in found.values()
                    )
        memo = self._stock_items
        if len(memo) >= STOCK_ITEMS_MAX:
            memo.clear()
        for i, lv in zip(todo, levels, strict=True):
            sku = skus[i]
            if lv is None:
                v = found.get(sku)
                if v is None:
                    items[i] = b'{"sku":"%s","available":0,"status":"unknown"}' % sku.encode()
                    continue
                lv = StockLevel(v.stock_version, v.stock, v.low_stock_threshold)
            status = rules.stock_status(lv.stock, lv.threshold)
            items[i] = b'{"sku":"%s","available":%d,"status":"%s"}' % (
                sku.encode(), lv.stock, status.encode()
            )  # fmt: skip
            if raw[i] is not None:  # read from Redis: the same values give the same item
                memo[sku] = (raw[i], held[i], items[i])

    # -- pages ------------------------------------------------------------------------

    def view(self, p: Product, levels: Sequence[int]) -> ProductView:
        return ProductView(
            product_id=p.product_id,
            seller_id=p.seller_id,
            category_id=p.category_id,
            category_path=self._path(p.category_id),
            title=p.title,
            description=p.description,
            brand=p.brand,
            attributes=dict(p.attributes),
            images=list(p.images),
            status=p.status,
            version=p.version,
            variants=[
                VariantView(
                    sku=v.sku,
                    price_minor=v.price_minor,
                    currency=v.currency,
                    attributes=dict(v.attributes),
                    low_stock_threshold=v.low_stock_threshold,
                    available=level,
                    stock_status=rules.stock_status(level, v.low_stock_threshold),
                )
                for v, level in zip(p.variants, levels, strict=True)
            ],
            created_at=p.created_at,
            updated_at=p.updated_at,
        )

    async def _build(self, product_id: int) -> Page:
        await self._load_categories()
        with pg_errors():
            p = await self.repo.product(product_id)
        if p is None:
            return _MISSING
        levels, live = await self._levels_live(p.variants)
        view = self.view(p, [_MARK + i for i in range(len(p.variants))])
        cut = _encoder.encode(view)
        parts: list[bytes] = []
        for i, v in enumerate(view.variants):
            head, sep, cut = cut.partition(_stock_json(_MARK + i, v.low_stock_threshold))
            assert sep, "a variant's stock not found in its page"
            parts.append(head)
        parts.append(cut)
        shared = SharedPage(
            p.status, p.seller_id, p.version, parts, [v.sku for v in p.variants],
            [v.low_stock_threshold for v in p.variants],
        )  # fmt: skip
        return self._assemble(product_id, shared, levels, live)

    def _assemble(self, product_id: int, s: SharedPage, levels: list[int], live: bool) -> Page:
        """The page of a build (from PostgreSQL, or shared by another worker) with the
        stock levels read for it."""
        cc = PUBLIC_CACHE_CONTROL if s.status == "active" else PRIVATE_CACHE_CONTROL
        page = Page(
            product_id=product_id,
            status=s.status,
            seller_id=s.seller_id,
            body=b"",
            etag="",
            headers=[],
            headers_304=[],
            expires_at=self.cache.expiry(),
            parts=tuple(s.parts),
            keys=self.store.keys(s.skus),
            thresholds=tuple(s.thresholds),
            version=s.version,
            cache_control=cc,
            live=live,
            shared=s,
        )
        built = _shown(page, levels)
        page.memo[:] = [None, levels, built]
        return dataclasses.replace(
            page,
            body=built.body,
            etag=built.etag,
            headers=built.headers,
            headers_304=built.headers_304,
        )

    async def show(self, page: Page) -> Shown:
        """The page with its variants' stock as Redis has it now (one MGET, shared with the
        other reads of this event-loop tick). While Redis fails: PostgreSQL's stock."""
        if not page.live or not page.keys:
            return page.built
        try:
            with redis_errors():
                raw = await self.store.raw(page.keys)
        except Unavailable:
            fresh = await self._build(page.product_id)  # PostgreSQL's stock now
            return page.built if fresh is _MISSING else fresh.built
        memo = page.memo  # [raw values, their levels, their Shown]
        if raw == memo[0]:
            return memo[2]  # type: ignore[no-any-return]
        known = memo[1]  # a level Redis lost: the last one read
        found = self.store.parse(raw, len(page.thresholds))
        levels = [known[i] if lv is None else lv.stock for i, lv in enumerate(found)]
        shown = _shown(page, levels)
        memo[:] = [raw, levels, shown]
        return shown

    async def page(self, product_id: int) -> Page | None:
        """The product's page (cached), or None when there is no such product. The caller
        decides who may see a page that is not active."""
        page = self.cache.get(product_id)
        if page is None:
            # one build per product at a time: a popular product's first views (or its views
            # right after a change) wait for one build instead of each running its own
            building = self._building.get(product_id)
            if building is None or not self.cache.unchanged_since(product_id, building[0]):
                # none yet, or it began before the product changed: a new one
                began = self.cache.begin()
                future = asyncio.ensure_future(self._build_and_keep(product_id, began))
                building = self._building[product_id] = (began, future)
                future.add_done_callback(functools.partial(self._built, product_id))
            page = await asyncio.shield(building[1])
        return None if page.status == "missing" else page

    async def _build_and_keep(self, product_id: int, began: int) -> Page:
        built, gen = await self._shared(product_id)
        share = built is None
        if built is None:
            built = await self._build(product_id)
        self.on_page_built(_BUILT if share else _SHARED)
        self.cache.put(built if built is not _MISSING else _missing(product_id, self.cache), began)
        if share and gen is not None and built.live and built.shared is not None:
            await self._share(product_id, built.shared, gen)  # views from now on hit the cache
        return built

    async def _shared(self, product_id: int) -> tuple[Page | None, bytes | None]:
        """The page another worker built (None: none, or a stock level Redis lacks, which
        PostgreSQL has), and the product's generation to share a new build under (None:
        Redis failed, nothing to share)."""
        try:
            with redis_errors():
                blob, gen = await self.store.shared_page(product_id)
                if blob is None:
                    return None, gen
                s = _shared_decoder.decode(blob)
                found = await self.store.levels(s.skus)
        except Unavailable:
            return None, None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None, gen  # another layout (a deploy): built again, shared anew
        levels = [lv.stock for lv in found if lv is not None]
        if len(levels) < len(found):
            return None, gen
        return self._assemble(product_id, s, levels, True), gen

    async def _share(self, product_id: int, shared: SharedPage, gen: bytes) -> None:
        """Best effort: a page not shared is built again by the next worker that needs it."""
        blob = _shared_encoder.encode(shared)
        # half a worker's TTL: a page taken from it near its end is kept by that worker
        # for at most one TTL more, so the last-resort bound stays 1.5 TTLs
        ttl_ms = int(self.cache.ttl_s * 500)
        with contextlib.suppress(Unavailable), redis_errors():
            await self.store.share_page(product_id, gen, blob, ttl_ms)

    def _built(self, product_id: int, future: asyncio.Future[Page]) -> None:
        building = self._building.get(product_id)
        if building is not None and building[1] is future:  # not a newer build's
            del self._building[product_id]
        if not future.cancelled():
            future.exception()  # retrieved: its waiters got it (or were cancelled)

    async def fresh_page(self, product_id: int) -> Page | None:
        """Uncached (owners' view of drafts and archived products)."""
        built = await self._build(product_id)
        return None if built is _MISSING else built

    async def listing(self, cursor: int | None, category_id: int | None, limit: int) -> bytes:
        """A listing page as JSON, from this worker's cache when its feed is following."""
        if not self.cache.on:
            return await self._list_body(-1, cursor, category_id, limit)
        return await self._listing(self.cache.epoch, cursor, category_id, limit)

    async def _list_body(
        self, _epoch: int, cursor: int | None, category_id: int | None, limit: int
    ) -> bytes:
        return _encoder.encode(await self.list_products(cursor, category_id, limit))

    async def list_products(
        self, cursor: int | None, category_id: int | None, limit: int
    ) -> ProductsPage:
        ids: list[int] | None = None
        if category_id is not None:
            ids = await self.category_subtree(category_id)
            if ids is None:
                raise Refused(400, "bad-query", "Invalid query parameter", "no such category")
        with pg_errors():
            products = await self.repo.page(cursor, ids, limit + 1)
        more = len(products) > limit
        products = products[:limit]
        # in stock: something available now (one MGET for the page's variants)
        levels = iter(await self._levels([v for p in products for v in p.variants]))
        items = []
        for p in products:
            prices = [v.price_minor for v in p.variants]
            live = [next(levels) for _ in p.variants]
            items.append(
                ProductSummary(
                    product_id=p.product_id,
                    category_id=p.category_id,
                    title=p.title,
                    brand=p.brand,
                    image=p.images[0] if p.images else None,
                    price_min_minor=min(prices) if prices else None,
                    currency=p.variants[0].currency if p.variants else None,
                    in_stock=any(n > 0 for n in live),
                )
            )
        next_cursor = str(products[-1].product_id) if more and products else None
        return ProductsPage(items, next_cursor)

    # -- writes -----------------------------------------------------------------------

    async def _after_write(self, p: Product, levels: Sequence[Variant] = ()) -> None:
        """After a commit: stock levels to Redis, the change to every worker's cache."""
        self.cache.drop(p.product_id)
        try:
            with redis_errors():
                if levels:
                    await self.store.set_levels(
                        (v.sku, StockLevel(v.stock_version, v.stock, v.low_stock_threshold))
                        for v in levels
                    )
                await self.store.publish_changed(p.product_id)
        except Unavailable:
            # committed: the answer stands. The outbox relay writes the level and the
            # announcement from the change's outbox row (at least once, within its poll).
            log.warning("catalog: change of product %d not announced (Redis)", p.product_id)

    async def _answer(self, p: Product) -> tuple[ProductView, str]:
        await self._load_categories()
        levels = [v.stock for v in p.variants]  # just committed: PostgreSQL is current
        return self.view(p, levels), rules.etag(p.version, _stock_tag(levels))

    async def create(
        self, caller: Caller, body: ProductCreate, key: str
    ) -> tuple[ProductView, str, bool]:
        """-> (product, ETag, replayed)."""
        seller_id = caller.user_id
        if body.seller_id is not None and body.seller_id != caller.user_id:
            if not caller.is_admin:
                raise Refused(
                    403, "forbidden", "Not allowed", "only admins create for another seller"
                )
            seller_id = body.seller_id
        change = Change(
            title=body.title,
            description=body.description,
            brand=body.brand,
            category_id=body.category_id,
            attributes=dict(body.attributes),
            images=list(body.images),
            status=body.status,
            new_variants=[
                VariantFields(
                    v.sku, v.price_minor, v.currency, dict(v.attributes), v.low_stock_threshold
                )
                for v in body.variants
            ],
            event="ProductCreated",
        )
        errors: list[str] = []
        rules.check_product(
            errors,
            title=change.title,
            description=change.description,
            brand=change.brand,
            attributes=change.attributes,
            images=change.images,
            status=change.status,
        )
        if change.status == "archived":
            errors.append("status: a new product is draft or active")
        if len(body.variants) > rules.VARIANTS_MAX:
            errors.append(f"variants: at most {rules.VARIANTS_MAX}")
        if change.status == "active" and not body.variants:
            errors.append("variants: an active product needs at least one")
        for i, v in enumerate(change.new_variants[: rules.VARIANTS_MAX]):
            _check_variant(errors, v, f"variants[{i}].")
        skus = [v.sku for v in change.new_variants]
        if len(set(skus)) != len(skus):
            errors.append("variants: each sku once")
        try:
            rules.raise_if(errors)
        except rules.RuleBroken as exc:
            raise _broken(exc) from None
        await self._require_category(change.category_id)
        product_id = rules.created_product_id(seller_id, key)
        fingerprint = _fingerprint(body, seller_id)
        with pg_errors():
            existing = await self.repo.product(product_id)
            if existing is None:
                try:
                    await self.repo.claim_skus(product_id, skus)
                except repo_mod.SkuTaken as exc:
                    raise Refused(
                        409, "sku-taken", "SKU belongs to another product", exc.sku
                    ) from None
                product, replayed = await self.repo.create(
                    product_id, seller_id, change, fingerprint
                )
            else:
                product, replayed = existing, True
        if replayed and product.create_fingerprint != fingerprint:
            raise Refused(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused with another request",
                "this key created another product",
            )
        if not replayed:
            await self._after_write(product, product.variants)
        view, etag = await self._answer(product)
        return view, etag, replayed

    async def _write(
        self,
        caller: Caller,
        product_id: int,
        if_match: int,
        key: str,
        decide: Callable[[Product], Change],
        claim: Sequence[str] = (),
    ) -> tuple[ProductView, str, bool]:
        def writer(current: Product) -> Change:
            if not rules.may_write(caller.user_id, caller.is_admin, current.seller_id):
                raise repo_mod.NoSuchProduct(product_id)  # not theirs: as if absent (404)
            return decide(current)

        if claim:
            with pg_errors():
                current = await self.repo.product(product_id)
            if current is None or not rules.may_write(
                caller.user_id, caller.is_admin, current.seller_id
            ):
                raise _not_found()
            try:
                with pg_errors():
                    await self.repo.claim_skus(product_id, claim)
            except repo_mod.SkuTaken as exc:
                raise Refused(409, "sku-taken", "SKU belongs to another product", exc.sku) from None
        try:
            with pg_errors():
                product, replayed = await self.repo.write(product_id, if_match, key, writer)
        except repo_mod.NoSuchProduct:
            raise _not_found() from None
        except repo_mod.Stale as exc:
            if not rules.may_write(caller.user_id, caller.is_admin, exc.current.seller_id):
                raise _not_found() from None
            raise _stale(exc.current) from None
        except rules.RuleBroken as exc:
            raise _broken(exc) from None
        except rules.TransitionRefused as exc:
            raise Refused(
                409, "invalid-transition", "Status change not allowed", str(exc)
            ) from None
        if not replayed:
            await self._after_write(product, product.variants if claim else ())
        view, etag = await self._answer(product)
        return view, etag, replayed

    async def update(
        self, caller: Caller, product_id: int, if_match: int, key: str, patch: ProductPatch
    ) -> tuple[ProductView, str, bool]:
        if patch.category_id is not None:
            await self._require_category(patch.category_id)

        def decide(current: Product) -> Change:
            c = _change_of(current)
            for name in ("title", "description", "brand", "category_id", "status"):
                value = getattr(patch, name)
                if value is not None:
                    setattr(c, name, value)
            if patch.attributes is not None:
                c.attributes = dict(patch.attributes)
            if patch.images is not None:
                c.images = list(patch.images)
            _check_change(c)
            rules.check_transition(current.status, c.status)
            if c.status == "active" and not current.variants:
                raise rules.RuleBroken(["status: an active product needs at least one variant"])
            if c.status == "archived" and current.status != "archived":
                c.event = "ProductArchived"
            return c

        return await self._write(caller, product_id, if_match, key, decide)

    async def archive(
        self, caller: Caller, product_id: int, if_match: int, key: str
    ) -> tuple[ProductView, str, bool]:
        def decide(current: Product) -> Change:
            c = _change_of(current)
            c.status = "archived"
            rules.check_transition(current.status, "archived")
            c.event = "ProductArchived"
            return c

        return await self._write(caller, product_id, if_match, key, decide)

    async def add_variant(
        self, caller: Caller, product_id: int, if_match: int, key: str, body: VariantCreate
    ) -> tuple[ProductView, str, bool]:
        v = VariantFields(
            body.sku,
            body.price_minor,
            body.currency,
            dict(body.attributes),
            body.low_stock_threshold,
        )
        errors: list[str] = []
        _check_variant(errors, v)
        try:
            rules.raise_if(errors)
        except rules.RuleBroken as exc:
            raise _broken(exc) from None

        def decide(current: Product) -> Change:
            if current.status == "archived":
                raise rules.TransitionRefused("an archived product takes no new variants")
            if any(x.sku == v.sku for x in current.variants):
                raise rules.RuleBroken([f"sku: {v.sku} is a variant of this product already"])
            if len(current.variants) >= rules.VARIANTS_MAX:
                raise rules.RuleBroken([f"variants: at most {rules.VARIANTS_MAX}"])
            c = _change_of(current)
            c.new_variants = [v]
            return c

        return await self._write(caller, product_id, if_match, key, decide, claim=[v.sku])

    async def update_variant(
        self,
        caller: Caller,
        product_id: int,
        sku: str,
        if_match: int,
        key: str,
        patch: VariantPatch,
    ) -> tuple[ProductView, str, bool]:
        def decide(current: Product) -> Change:
            old = next((x for x in current.variants if x.sku == sku), None)
            if old is None:
                raise repo_mod.NoSuchProduct(product_id)
            v = VariantFields(
                sku,
                old.price_minor if patch.price_minor is None else patch.price_minor,
                old.currency if patch.currency is None else patch.currency,
                dict(old.attributes if patch.attributes is None else patch.attributes),
                old.low_stock_threshold
                if patch.low_stock_threshold is None
                else patch.low_stock_threshold,
            )
            errors: list[str] = []
            _check_variant(errors, v)
            rules.raise_if(errors)
            c = _change_of(current)
            c.changed_variants = [v]
            return c

        view, etag, replayed = await self._write(caller, product_id, if_match, key, decide)
        if not replayed and patch.low_stock_threshold is not None:
            # the threshold is part of the live level in Redis: write it with the stock
            with pg_errors():
                p = await self.repo.product(product_id)
            if p is not None:
                await self._after_write(p, [v for v in p.variants if v.sku == sku])
        return view, etag, replayed

    async def adjust_stock(
        self, caller: Caller, product_id: int, sku: str, key: str, body: StockAdjustment
    ) -> tuple[AdjustmentView, bool]:
        errors: list[str] = []
        rules.check_adjustment(errors, body.delta, body.reason, body.note)
        try:
            rules.raise_if(errors)
        except rules.RuleBroken as exc:
            raise _broken(exc) from None

        def check(p: Product) -> None:
            if not rules.may_write(caller.user_id, caller.is_admin, p.seller_id):
                raise repo_mod.NoSuchProduct(product_id)

        adj_id = rules.adjustment_id(sku, key)
        try:
            with pg_errors():
                done = await self.repo.adjust_stock(
                    product_id,
                    sku,
                    adj_id,
                    body.delta,
                    body.reason,
                    body.note,
                    caller.user_id,
                    check,
                )
        except (repo_mod.NoSuchProduct, repo_mod.NoSuchVariant):
            raise _not_found("no such product or SKU") from None
        except repo_mod.InsufficientStock as exc:
            raise Refused(
                409,
                "insufficient-stock",
                "Not enough stock for this adjustment",
                f"{exc.stock} in stock, delta {body.delta}",
            ) from None
        if done.replayed and (done.delta != body.delta or done.reason != body.reason):
            raise Refused(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused with another request",
                "this key made another adjustment",
            )
        if not done.replayed:
            if done.crossed_low:
                self.on_stock_low()
            await self._after_write(done.product, [done.variant])
        v = done.variant
        return (
            AdjustmentView(
                adjustment_id=str(done.adjustment_id),
                product_id=product_id,
                sku=sku,
                delta=done.delta,
                reason=done.reason,
                available=v.stock,
                stock_status=rules.stock_status(v.stock, v.low_stock_threshold),
            ),
            done.replayed,
        )


def _missing(product_id: int, cache: PageCache) -> Page:
    return Page(product_id, "missing", 0, b"", "", [], [], cache.expiry())
