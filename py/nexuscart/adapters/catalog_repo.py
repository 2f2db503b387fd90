"""PostgreSQL side of the catalog: categories, products, variants, the SKU lookup, the stock
audit and the catalog outbox (migration 0005). SQL lives in sql/queries/*.sql; this module
binds parameters, maps rows and runs each write as one single-shard transaction (a product,
its variants, its audit rows and its events share the product's shard). Reads that span
shards: the listing, the outbox poll and the stock fallback by SKU."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import asyncpg
import msgspec

from nexuscart import events
from nexuscart.adapters.postgres import query

Pool = Callable[[], Awaitable[asyncpg.Pool]]

# A SKU claim older than this whose variant never came (its write died between the claim
# and the product's transaction) may be taken by another product.
ORPHAN_CLAIM_S: Final = 60.0

_encoder: Final = msgspec.json.Encoder()
_attrs: Final = msgspec.json.Decoder(dict[str, str])


class Category(NamedTuple):
    category_id: int
    parent_id: int | None
    name: str
    slug: str
    position: int


class Variant(NamedTuple):
    product_id: int
    sku: str
    price_minor: int
    currency: str
    attributes: dict[str, str]
    low_stock_threshold: int
    stock: int
    stock_version: int
    position: int


class Product(NamedTuple):
    product_id: int
    seller_id: int
    category_id: int
    title: str
    description: str
    brand: str
    attributes: dict[str, str]
    images: tuple[str, ...]
    status: str
    version: int
    popularity: float
    create_fingerprint: str | None
    last_write_key: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    variants: tuple[Variant, ...] = ()


def _variant(r: Any, attributes: str = "attributes") -> Variant:
    """``attributes``: the column's name in ``r`` (a join with products renames it)."""
    return Variant(
        r["product_id"],
        r["sku"],
        r["price_minor"],
        r["currency"],
        _attrs.decode(r[attributes]),
        r["low_stock_threshold"],
        r["stock"],
        r["stock_version"],
        r["position"],
    )


def _product(r: Any, variants: Sequence[Variant] = ()) -> Product:
    return Product(
        r["product_id"],
        r["seller_id"],
        r["category_id"],
        r["title"],
        r["description"],
        r["brand"],
        _attrs.decode(r["attributes"]),
        tuple(r["images"]),
        r["status"],
        r["version"],
        r["popularity"],
        r["create_fingerprint"],
        r["last_write_key"],
        r["created_at"],
        r["updated_at"],
        tuple(variants),
    )


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def product_data(p: Product) -> events.ProductData:
    return events.ProductData(
        product_id=p.product_id,
        seller_id=p.seller_id,
        category_id=p.category_id,
        title=p.title,
        description=p.description,
        brand=p.brand,
        attributes=dict(p.attributes),
        images=list(p.images),
        status=p.status,
        version=p.version,
        popularity=p.popularity,
        variants=[
            events.VariantData(
                sku=v.sku,
                price_minor=v.price_minor,
                currency=v.currency,
                attributes=dict(v.attributes),
                low_stock_threshold=v.low_stock_threshold,
                stock=v.stock,
            )
            for v in p.variants
        ],
        created_at_ms=_ms(p.created_at),
        updated_at_ms=_ms(p.updated_at),
    )


def envelope(product_id: int, data: events.CatalogEvent) -> tuple[uuid.UUID, bytes]:
    """A catalog.v1 envelope, encoded as it goes to Kafka."""
    event_id = uuid.uuid4()
    env = events.CatalogEnvelope(
        id=event_id,
        type=type(data).__name__,
        version=1,
        occurred_at=dt.datetime.now(dt.UTC),
        key=str(product_id),
        data=data,
    )
    return event_id, _encoder.encode(env)


class OutboxRow(NamedTuple):
    key: int  # the product id: the Kafka key
    event_id: uuid.UUID
    topic: str
    payload: bytes


class SkuTaken(Exception):
    def __init__(self, sku: str):
        super().__init__(sku)
        self.sku = sku


class NoSuchProduct(Exception):
    pass


class NoSuchVariant(Exception):
    pass


class Stale(Exception):
    """If-Match named an older version than the product's."""

    def __init__(self, current: Product):
        super().__init__(f"version is {current.version}")
        self.current = current


class InsufficientStock(Exception):
    def __init__(self, stock: int):
        super().__init__(f"{stock} in stock")
        self.stock = stock


@dataclass
class VariantFields:
    sku: str
    price_minor: int
    currency: str
    attributes: dict[str, str]
    low_stock_threshold: int


@dataclass
class Change:
    """What a write does to a product, decided by the use case from the locked current
    state (``Writer``): the product's fields after it, variants to add or to rewrite, and
    the event it raises."""

    title: str
    description: str
    brand: str
    category_id: int
    attributes: dict[str, str]
    images: list[str]
    status: str
    new_variants: list[VariantFields] = field(default_factory=list)
    changed_variants: list[VariantFields] = field(default_factory=list)
    event: str = "ProductUpdated"  # ProductUpdated | ProductArchived


Writer = Callable[[Product], Change]


@dataclass
class Adjusted:
    product: Product  # seller, status: for the caller's checks and events
    variant: Variant  # after the adjustment
    adjustment_id: uuid.UUID
    delta: int
    reason: str
    crossed_low: bool
    replayed: bool


def _fields_args(c: Change) -> tuple[Any, ...]:
    return (
        c.category_id,
        c.title,
        c.description,
        c.brand,
        _encoder.encode(c.attributes).decode(),
        c.images,
        c.status,
    )


class CatalogRepo:
    def __init__(self, pool: Pool):
        self.pool = pool

    # -- reads ------------------------------------------------------------------------

    async def categories(self) -> list[Category]:
        p = await self.pool()
        return [
            Category(r["category_id"], r["parent_id"], r["name"], r["slug"], r["position"])
            for r in await p.fetch(query("category_all"))
        ]

    async def product(self, product_id: int) -> Product | None:
        """A product with its variants (one single-shard statement)."""
        p = await self.pool()
        rows = await p.fetch(query("product_with_variants"), product_id)
        if not rows:
            return None
        variants = [_variant(r, "variant_attributes") for r in rows if r["sku"] is not None]
        return _product(rows[0], variants)

    async def page(
        self, cursor: int | None, category_ids: Sequence[int] | None, limit: int
    ) -> list[Product]:
        """Active products by id after ``cursor`` (optionally in these categories), with
        their variants."""
        p = await self.pool()
        async with p.acquire() as conn:
            rows = await conn.fetch(
                query("products_page"),
                cursor,
                None if category_ids is None else list(category_ids),
                limit,
            )
            if not rows:
                return []
            vs = await conn.fetch(query("variants_of_products"), [r["product_id"] for r in rows])
        by_product: dict[int, list[Variant]] = {}
        for v in vs:
            by_product.setdefault(v["product_id"], []).append(_variant(v))
        return [_product(r, by_product.get(r["product_id"], ())) for r in rows]

    async def iter_products(self, batch: int = 2000) -> AsyncIterator[list[Product]]:
        """Every product (any status) with its variants, in pages by id: for a consumer
        that rebuilds a derived view (the search index)."""
        cursor = 0
        p = await self.pool()
        while True:
            async with p.acquire() as conn:
                rows = await conn.fetch(query("products_after"), cursor, batch)
                if not rows:
                    return
                ids = [r["product_id"] for r in rows]
                vs = await conn.fetch(query("variants_of_products"), ids)
            by_product: dict[int, list[Variant]] = {}
            for v in vs:
                by_product.setdefault(v["product_id"], []).append(_variant(v))
            yield [_product(r, by_product.get(r["product_id"], ())) for r in rows]
            cursor = ids[-1]

    async def stock_by_sku(self, skus: Sequence[str]) -> dict[str, Variant]:
        """Variants of these SKUs from PostgreSQL (the fallback when Redis lacks them): the
        SKUs' shards, then their products' shards."""
        p = await self.pool()
        async with p.acquire() as conn:
            owners = await conn.fetch(query("skus_lookup_many"), list(skus))
            if not owners:
                return {}
            rows = await conn.fetch(
                query("variants_stock_of"),
                sorted({r["product_id"] for r in owners}),
                [r["sku"] for r in owners],
            )
        owner = {r["sku"]: r["product_id"] for r in owners}
        return {
            r["sku"]: Variant(
                r["product_id"],
                r["sku"],
                0,
                "",
                {},
                r["low_stock_threshold"],
                r["stock"],
                r["stock_version"],
                0,
            )
            for r in rows
            if owner.get(r["sku"]) == r["product_id"]  # a variant of the SKU's owner
        }

    # -- writes -----------------------------------------------------------------------

    async def claim_skus(self, product_id: int, skus: Sequence[str]) -> None:
        """Claim each SKU for ``product_id`` (already its own: fine). Raises SkuTaken for
        one another product has; a claim without its variant for ORPHAN_CLAIM_S (a write
        that died between the claim and its transaction) is taken over."""
        p = await self.pool()
        for sku in skus:
            owner = await p.fetchval(query("sku_claim"), sku, product_id)
            if owner is not None:
                continue
            owner = await p.fetchval(query("sku_lookup"), sku)
            if owner == product_id:
                continue
            if owner is not None and not await self._has_variant(owner, sku):
                took = await p.fetchval(
                    query("sku_takeover"), sku, owner, ORPHAN_CLAIM_S, product_id
                )
                if took is not None:
                    continue
            raise SkuTaken(sku)

    async def _has_variant(self, product_id: int, sku: str) -> bool:
        p = await self.pool()
        rows = await p.fetch(query("variants_of_product"), product_id)
        return any(r["sku"] == sku for r in rows)

    async def create(
        self,
        product_id: int,
        seller_id: int,
        change: Change,
        fingerprint: str,
    ) -> tuple[Product, bool]:
        """The product, its variants (SKUs claimed first by the caller) and its
        ProductCreated event in one single-shard transaction. If the id exists (a retried
        create), nothing is written and that product comes back with True."""
        p = await self.pool()
        async with p.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                query("product_insert"),
                product_id,
                seller_id,
                *_fields_args(change),
                fingerprint,
            )
            if row is None:
                existing = await conn.fetchrow(query("product_by_id"), product_id)
                vs = await conn.fetch(query("variants_of_product"), product_id)
                return _product(existing, [_variant(v) for v in vs]), True
            for i, v in enumerate(change.new_variants):
                await self._insert_variant(conn, product_id, v, i)
            vs = await conn.fetch(query("variants_of_product"), product_id)
            product = _product(row, [_variant(v) for v in vs])
            await self._emit(conn, product_id, events.ProductCreated(product_data(product)))
        return product, False

    async def write(
        self, product_id: int, if_match: int, write_key: str, writer: Writer
    ) -> tuple[Product, bool]:
        """Lock the product, check ``if_match`` against its version, apply ``writer``'s
        change, move the version on and record the event, in one single-shard transaction.
        A retry of the last write (same key, the version it made) returns the product with
        True. Raises NoSuchProduct, Stale, or what ``writer`` raises."""
        p = await self.pool()
        async with p.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(query("product_lock"), product_id)
            if row is None:
                raise NoSuchProduct(product_id)
            vs = await conn.fetch(query("variants_of_product"), product_id)
            current = _product(row, [_variant(v) for v in vs])
            if current.version != if_match:
                if current.last_write_key == write_key and current.version == if_match + 1:
                    return current, True
                raise Stale(current)
            change = writer(current)
            saved = await conn.fetchrow(
                query("product_save"), product_id, *_fields_args(change), write_key
            )
            position = len(current.variants)
            for v in change.new_variants:
                await self._insert_variant(conn, product_id, v, position)
                position += 1
            for v in change.changed_variants:
                await conn.execute(
                    query("variant_save"),
                    product_id,
                    v.sku,
                    v.price_minor,
                    v.currency,
                    _encoder.encode(v.attributes).decode(),
                    v.low_stock_threshold,
                )
            vs = await conn.fetch(query("variants_of_product"), product_id)
            product = _product(saved, [_variant(v) for v in vs])
            data = product_data(product)
            event: events.CatalogEvent = (
                events.ProductArchived(data)
                if change.event == "ProductArchived"
                else events.ProductUpdated(data)
            )
            await self._emit(conn, product_id, event)
        return product, False

    async def _insert_variant(
        self, conn: asyncpg.Connection, product_id: int, v: VariantFields, position: int
    ) -> None:
        await conn.execute(
            query("variant_insert"),
            product_id,
            v.sku,
            v.price_minor,
            v.currency,
            _encoder.encode(v.attributes).decode(),
            v.low_stock_threshold,
            position,
        )

    async def adjust_stock(
        self,
        product_id: int,
        sku: str,
        adjustment_id: uuid.UUID,
        delta: int,
        reason: str,
        note: str,
        actor_id: int,
        check: Callable[[Product], None],
    ) -> Adjusted:
        """Apply ``delta`` to a SKU's stock with its audit row and events (StockAdjusted,
        StockLow on a downward crossing of the threshold), in one single-shard transaction.
        ``check`` sees the product first (ownership). A retry (same adjustment id) changes
        nothing and returns the recorded adjustment with the variant as it is now."""
        p = await self.pool()
        async with p.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(query("product_by_id"), product_id)
            if row is None:
                raise NoSuchProduct(product_id)
            product = _product(row)
            check(product)
            vrow = await conn.fetchrow(query("variant_lock"), product_id, sku)
            if vrow is None:
                raise NoSuchVariant(sku)
            before = _variant(vrow)
            done = await conn.fetchrow(query("stock_adjustment_by_id"), product_id, adjustment_id)
            if done is not None:
                return Adjusted(
                    product, before, adjustment_id, done["delta"], done["reason"], False, True
                )
            after_stock = before.stock + delta
            if after_stock < 0:
                raise InsufficientStock(before.stock)
            await conn.execute(
                query("stock_adjustment_insert"),
                product_id,
                adjustment_id,
                sku,
                delta,
                reason,
                note,
                after_stock,
                actor_id,
            )
            after = _variant(
                await conn.fetchrow(query("variant_set_stock"), product_id, sku, after_stock)
            )
            crossed = before.stock > after.low_stock_threshold >= after.stock
            await self._emit(
                conn,
                product_id,
                events.StockAdjusted(
                    product_id=product_id,
                    seller_id=product.seller_id,
                    sku=sku,
                    adjustment_id=adjustment_id,
                    delta=delta,
                    reason=reason,
                    stock_after=after.stock,
                    stock_version=after.stock_version,
                    actor_id=actor_id,
                    low_stock_threshold=after.low_stock_threshold,
                ),
            )
            if crossed:
                await self._emit(
                    conn,
                    product_id,
                    events.StockLow(
                        product_id=product_id,
                        seller_id=product.seller_id,
                        sku=sku,
                        stock=after.stock,
                        threshold=after.low_stock_threshold,
                    ),
                )
        return Adjusted(product, after, adjustment_id, delta, reason, crossed, False)

    async def _emit(
        self, conn: asyncpg.Connection, product_id: int, data: events.CatalogEvent
    ) -> None:
        event_id, payload = envelope(product_id, data)
        await conn.execute(
            query("catalog_outbox_insert"), product_id, event_id, events.CATALOG_TOPIC, payload
        )

    # -- outbox -----------------------------------------------------------------------

    async def outbox_batch(self, limit: int) -> list[OutboxRow]:
        p = await self.pool()
        rows = await p.fetch(query("catalog_outbox_batch"), limit)
        return [OutboxRow(r["key"], r["event_id"], r["topic"], bytes(r["payload"])) for r in rows]

    async def outbox_delete(self, rows: Sequence[OutboxRow]) -> None:
        p = await self.pool()
        await p.executemany(query("catalog_outbox_delete"), [(r.key, r.event_id) for r in rows])
