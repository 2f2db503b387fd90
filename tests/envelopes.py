"""Integration events built and encoded in Python, as a publisher other than the Lua scripts
would: the tests' stand-in for the payments service and for replayed or poison records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

import msgspec

from nexuscart.events import Envelope, Event, OrderLine, OrderPlaced

_encoder: Final = msgspec.json.Encoder()


def envelope(data: Event, key: int | str, event_id: uuid.UUID | None = None) -> Envelope:
    return Envelope(
        id=event_id or uuid.uuid4(),
        type=type(data).__name__,
        version=1,
        occurred_at=datetime.now(UTC),
        key=str(key),
        data=data,
    )


def encode(env: Envelope) -> bytes:
    return _encoder.encode(env)


def placed_order(
    user_id: int,
    order_id: int,
    lines: tuple[OrderLine, ...] | None = None,
    *,
    promo_code: str | None = "SAVE10",
    currency: str = "eur",
    expires_at_ms: int = 1_900_000_000_123,
) -> OrderPlaced:
    """An everyday checkout's OrderPlaced (two lines totalling 1,500 after a 100 discount by
    default), as CART-CHECKOUT's script writes it."""
    lines = lines or (
        OrderLine(sku="SKU-EV-1", product_id=910_001, quantity=1, unit_price_minor=1000),
        OrderLine(sku="SKU-EV-2", product_id=910_002, quantity=1, unit_price_minor=600),
    )
    subtotal = sum(ln.quantity * ln.unit_price_minor for ln in lines)
    discount = 100 if promo_code and subtotal >= 100 else 0
    return OrderPlaced(
        order_id=order_id,
        user_id=user_id,
        lines=lines,
        currency=currency,
        subtotal_minor=subtotal,
        discount_minor=discount,
        total_minor=subtotal - discount,
        promo_code=promo_code,
        expires_at_ms=expires_at_ms,
    )
