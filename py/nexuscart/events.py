"""Every integration event, defined once. JSON on the wire, tagged by ``type``.

Envelope: ``{id, type, version, occurred_at, key, data}``. ``key`` is the aggregate's
distribution key (the buyer's user id) and is also the Kafka message key, so every event of
one user lands on one partition, in order, and its writes hit one Citus shard.

The flash-sale Lua scripts (adapters/lua/) build these envelopes inside Redis; the contract
tests in ``tests/test_flash_sale_store.py`` decode what they write with the Structs below.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime
from typing import Final

import msgspec

ORDERS_TOPIC: Final = "orders.v1"
PAYMENTS_TOPIC: Final = "payments.v1"
USERS_TOPIC: Final = "users.v1"
CATALOG_TOPIC: Final = "catalog.v1"
INTERACTIONS_TOPIC: Final = "interactions.v1"
# Records a consumer cannot apply (undecodable, or failing for good) go, unchanged, to the
# dead-letter topic of their topic, with headers naming their source and the error.
DLQ_SUFFIX: Final = ".dlq"


def dead_letter_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


class StockReserved(msgspec.Struct, frozen=True, tag="StockReserved"):
    """A flash-sale purchase took units into an expiring hold; the order awaits payment."""

    order_id: int
    sale_id: int
    user_id: int
    sku: str
    quantity: int
    unit_price_cents: int
    currency: str
    expires_at_ms: int


class StockReleased(msgspec.Struct, frozen=True, tag="StockReleased"):
    """A hold or reservation ended without a sale (``reason``: expired | cancelled |
    payment_failed); its units are back. ``sale_id`` is None for an everyday order's
    reservation (``quantity``: all its units)."""

    order_id: int
    sale_id: int | None
    user_id: int
    quantity: int
    reason: str


class StockSold(msgspec.Struct, frozen=True, tag="StockSold"):
    """A paid hold or reservation became a sale: the units are sold for good (``sale_id``
    None: an everyday order)."""

    order_id: int
    sale_id: int | None
    user_id: int
    quantity: int


class OrderLine(msgspec.Struct, frozen=True):
    """One line of an everyday order, priced when the order was placed (integer minor units
    of the order's currency)."""

    sku: str
    product_id: int
    quantity: int
    unit_price_minor: int


class OrderPlaced(msgspec.Struct, frozen=True, tag="OrderPlaced"):
    """An everyday checkout reserved stock for every line, all or nothing, until
    ``expires_at_ms``; the order awaits payment of ``total_minor`` (``subtotal_minor`` less
    ``discount_minor`` from ``promo_code``). Written by the checkout's Lua script into the
    Redis outbox, like StockReserved; released (StockReleased, sale_id None) or sold
    (StockSold, sale_id None) like a flash-sale hold."""

    order_id: int
    user_id: int
    lines: tuple[OrderLine, ...]
    currency: str
    subtotal_minor: int
    discount_minor: int
    total_minor: int
    promo_code: str | None
    expires_at_ms: int


class OrderStatusChanged(msgspec.Struct, frozen=True, tag="OrderStatusChanged"):
    """A person moved an order (docs/orders.md): a seller or admin fulfilled, shipped or
    delivered it, or its buyer (or an admin) cancelled it. Written to PostgreSQL's
    orders_outbox in the transaction of the change, relayed to orders.v1. A paid order
    cancelled before shipment ends ``REFUNDED``: payments refunds it, inventory puts its sold
    units back. ``actor``: buyer | seller | admin."""

    order_id: int
    sale_id: int | None
    user_id: int
    from_status: str
    to_status: str
    actor: str
    actor_id: int
    reason: str
    tracking_reference: str | None = None


# payments.v1 (docs/payments.md): written to PostgreSQL's payments_outbox by the payments
# service and the webhook endpoint, in the transaction of the change; key: the buyer's user
# id. ``sale_id`` is the flash sale of the order (None for an everyday order); ``payment_id``
# is derived from the order (one payment per order).


class PaymentRequested(msgspec.Struct, frozen=True, tag="PaymentRequested"):
    """A payment was opened with the provider for an order; the buyer can now pay it."""

    order_id: int
    sale_id: int | None
    user_id: int
    amount_cents: int
    currency: str
    payment_id: str
    provider: str
    provider_ref: str


class PaymentSucceeded(msgspec.Struct, frozen=True, tag="PaymentSucceeded"):
    """The buyer's payment for an order succeeded (the money is captured)."""

    order_id: int
    sale_id: int | None
    user_id: int
    amount_cents: int
    payment_id: str


class PaymentFailed(msgspec.Struct, frozen=True, tag="PaymentFailed"):
    """The payment of an order failed or was cancelled before any capture: the order is not
    paid and its hold is released (``reason``: failed | canceled | refused)."""

    order_id: int
    sale_id: int | None
    user_id: int
    payment_id: str
    reason: str


class PaymentRefunded(msgspec.Struct, frozen=True, tag="PaymentRefunded"):
    """Money went back to the buyer: ``refunded_cents`` in total so far (``amount_cents`` by
    this refund); ``reason``: late (paid after the hold ended) | admin | cancelled | provider
    (a refund made at the provider, learnt from its webhook)."""

    order_id: int
    sale_id: int | None
    user_id: int
    payment_id: str
    amount_cents: int
    refunded_cents: int
    reason: str


class UserRegistered(msgspec.Struct, frozen=True, tag="UserRegistered"):
    """A new account exists (published on users.v1 from the users outbox in PostgreSQL,
    written in the transaction that created the user). ``email`` is the normalised one."""

    user_id: int
    email: str
    display_name: str
    roles: list[str]
    registered_at_ms: int


# catalog.v1 (docs/catalog.md): written to PostgreSQL's catalog_outbox in the transaction of
# the change, relayed by services/outbox_relay; the Kafka key and the envelope's ``key`` are
# the product id. Product events carry the whole product after the change (state transfer:
# a consumer such as the search index needs no read back), ordered per product by
# ``version``.


class VariantData(msgspec.Struct, frozen=True):
    sku: str
    price_minor: int
    currency: str  # ISO 4217, upper case
    attributes: dict[str, str]
    low_stock_threshold: int
    stock: int  # units available when the event was written


class ProductData(msgspec.Struct, frozen=True):
    product_id: int
    seller_id: int
    category_id: int
    title: str
    description: str
    brand: str
    attributes: dict[str, str]
    images: list[str]
    status: str  # draft | active | archived
    version: int
    popularity: float
    variants: list[VariantData]
    created_at_ms: int
    updated_at_ms: int


class ProductCreated(msgspec.Struct, frozen=True, tag="ProductCreated"):
    product: ProductData


class ProductUpdated(msgspec.Struct, frozen=True, tag="ProductUpdated"):
    """Any change of the product or its variants (status changes between draft and active
    included); ``product`` is the product after it."""

    product: ProductData


class ProductArchived(msgspec.Struct, frozen=True, tag="ProductArchived"):
    product: ProductData


class StockAdjusted(msgspec.Struct, frozen=True, tag="StockAdjusted"):
    """An audited stock adjustment (restock, correction, ...) of one SKU."""

    product_id: int
    seller_id: int
    sku: str
    adjustment_id: uuid.UUID
    delta: int
    reason: str
    stock_after: int
    stock_version: int
    actor_id: int
    low_stock_threshold: int = 0  # the SKU's, at the time: the live level needs it


class StockLow(msgspec.Struct, frozen=True, tag="StockLow"):
    """A SKU's stock went from above its low-stock threshold to at or below it: once per
    crossing (it must rise above the threshold again before the next one)."""

    product_id: int
    seller_id: int
    sku: str
    stock: int
    threshold: int


CatalogEvent = ProductCreated | ProductUpdated | ProductArchived | StockAdjusted | StockLow


# interactions.v1 (docs/recommendations.md): shoppers' signals for the recommendations,
# published by the edge, a flush's views and its add-to-carts in one record each, keyed by
# the publishing worker (a batch names many shoppers). Views are sampled (a batch lost with
# its worker is acceptable); add-to-carts are exact.


class ProductViewed(msgspec.Struct, frozen=True, tag="ProductViewed"):
    """A product page was served (``user_id`` None: anonymous). The edge publishes views in
    ``ProductsViewed``; consumers still read this one (records written before)."""

    user_id: int | None
    product_id: int
    at_ms: int


class View(msgspec.Struct, frozen=True, array_like=True):
    user_id: int | None
    product_id: int
    at_ms: int


class ProductsViewed(msgspec.Struct, frozen=True, tag="ProductsViewed"):
    """One edge worker's sampled views of one flush, in one record: a record per view cost a
    worker serving product pages 12% of its CPU (py-spy). A consumer counts view ``i`` once
    by the id ``item_id(envelope id, i)``."""

    views: list[View]


class AddedToCart(msgspec.Struct, frozen=True, tag="AddedToCart"):
    user_id: int
    product_id: int
    sku: str
    quantity: int
    at_ms: int


class AddedToCarts(msgspec.Struct, frozen=True, tag="AddedToCarts"):
    """One edge worker's add-to-carts of one flush, in one record (as exact as one record
    each: it waits for Kafka like any other). A consumer counts add ``i`` once by the id
    ``item_id(envelope id, i)``; consumers still read single ``AddedToCart`` records."""

    adds: list[AddedToCart]


InteractionEvent = ProductViewed | ProductsViewed | AddedToCart | AddedToCarts


def item_id(batch_id: uuid.UUID, index: int) -> uuid.UUID:
    """The id of the ``index``-th item of a ``ProductsViewed`` or ``AddedToCarts`` (stable
    across redeliveries)."""
    return uuid.uuid5(batch_id, str(index))


# the events of orders.v1 and payments.v1 (users.v1 has UserEnvelope: a consumer of one
# topic handles only its own events)
Event = (
    StockReserved
    | OrderPlaced
    | StockReleased
    | StockSold
    | OrderStatusChanged
    | PaymentRequested
    | PaymentSucceeded
    | PaymentFailed
    | PaymentRefunded
)


class Envelope(msgspec.Struct, frozen=True):
    id: uuid.UUID
    type: str  # same as data's tag; at the top so routers need not look inside
    version: int
    occurred_at: datetime
    key: str
    data: Event


class UserEnvelope(msgspec.Struct, frozen=True):
    """The envelope of users.v1, same fields as ``Envelope``; ``key`` is the user id."""

    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    key: str
    data: UserRegistered


class CatalogEnvelope(msgspec.Struct, frozen=True):
    """The envelope of catalog.v1, same fields as ``Envelope``; ``key`` is the product id."""

    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    key: str
    data: CatalogEvent


class InteractionEnvelope(msgspec.Struct, frozen=True):
    """The envelope of interactions.v1, same fields as ``Envelope``."""

    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    key: str
    data: InteractionEvent


_decoder: Final = msgspec.json.Decoder(Envelope)
_catalog_decoder: Final = msgspec.json.Decoder(CatalogEnvelope)
_user_decoder: Final = msgspec.json.Decoder(UserEnvelope)


class EventIds:
    """Event ids for the purchase hot path: UUID-shaped (the inbox column is ``uuid``) and
    cheaper than ``uuid4()``. Downstream dedup is by event id, so they must not collide
    across workers or hosts (containers often share pids): a random prefix per generator,
    then the time in ns and a counter."""

    def __init__(self) -> None:
        self.prefix = os.urandom(4).hex()
        self.counter = 0

    def __call__(self) -> str:
        self.counter += 1
        n = f"{time.time_ns() & 0xFFFFFFFFFFFF:012x}"
        c = f"{self.counter & 0xFFFFFFFFFF:010x}"
        return f"{self.prefix}-{n[:4]}-4{n[4:7]}-8{n[7:10]}-{n[10:12]}{c}"


def decode(raw: bytes) -> Envelope:
    return _decoder.decode(raw)


def decode_user(raw: bytes) -> UserEnvelope:
    return _user_decoder.decode(raw)


def decode_catalog(raw: bytes) -> CatalogEnvelope:
    return _catalog_decoder.decode(raw)
