"""Flash-sale rules, pure: the sale's shape, its state at an instant, purchase outcomes."""

from __future__ import annotations

import enum
from typing import Annotated, Final

import msgspec

# Order ids are sale_id << 32 | seq, made inside fs_purchase.lua: with sale ids below 2^20
# they stay below 2^52, exact as Lua numbers (doubles) and as JSON numbers in any client.
# 2^32 - 1 purchase ids per sale, then it answers sold out: every purchase takes a unit
# (at most MAX_UNITS of them) that only a release gives back, so that takes over 4 billion
# purchases and releases (2.5 days of 20,000 a second, non-stop). User ids (the token
# verifier accepts 1 to 18 decimal digits) travel through the scripts as decimal strings.
MAX_SALE_ID: Final = (1 << 20) - 1
MAX_UNITS: Final = (1 << 24) - 1
MAX_QUANTITY: Final = 100

Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{3}$")]
Units = Annotated[int, msgspec.Meta(ge=0, le=MAX_UNITS)]
Cents = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)]
EpochMs = Annotated[int, msgspec.Meta(ge=0, le=10**14)]
HoldTtlS = Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class SaleSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an admin sets when creating a sale (times are Unix epoch milliseconds)."""

    sku: Sku
    units: Units
    price_cents: Cents
    starts_at_ms: EpochMs
    ends_at_ms: EpochMs
    per_user_limit: Limit = 1
    currency: Currency = "usd"
    hold_ttl_s: HoldTtlS | None = None


class SaleUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A partial update; ``units`` may grow (restock) or shrink down to held + sold."""

    units: Units | None = None
    price_cents: Cents | None = None
    starts_at_ms: EpochMs | None = None
    ends_at_ms: EpochMs | None = None
    per_user_limit: Limit | None = None


class Sale(msgspec.Struct, frozen=True):
    sale_id: int
    sku: str
    units: int
    price_cents: int
    currency: str
    per_user_limit: int
    starts_at_ms: int
    ends_at_ms: int
    hold_ttl_s: int
    ended: bool = False


def validate_window(starts_at_ms: int, ends_at_ms: int) -> str | None:
    """A reason the window is invalid, or None."""
    if ends_at_ms <= starts_at_ms:
        return "ends_at_ms must be after starts_at_ms"
    return None


def apply_update(sale: Sale, upd: SaleUpdate) -> Sale:
    return msgspec.structs.replace(
        sale,
        units=sale.units if upd.units is None else upd.units,
        price_cents=sale.price_cents if upd.price_cents is None else upd.price_cents,
        starts_at_ms=sale.starts_at_ms if upd.starts_at_ms is None else upd.starts_at_ms,
        ends_at_ms=sale.ends_at_ms if upd.ends_at_ms is None else upd.ends_at_ms,
        per_user_limit=sale.per_user_limit if upd.per_user_limit is None else upd.per_user_limit,
    )


class SaleState(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    SOLD_OUT = "sold_out"
    ENDED = "ended"


def state_at(sale: Sale, now_ms: int, available: int) -> SaleState:
    if sale.ended or now_ms >= sale.ends_at_ms:
        return SaleState.ENDED
    if now_ms < sale.starts_at_ms:
        return SaleState.SCHEDULED
    return SaleState.SOLD_OUT if available <= 0 else SaleState.ACTIVE


class Outcome(enum.IntEnum):
    """Codes returned by lua/fs_purchase.lua."""

    OK = 0
    SOLD_OUT = 1
    LIMIT_REACHED = 2
    NOT_STARTED = 3
    ENDED = 4
    NOT_FOUND = 5
    REPLAY = 6
    KEY_REUSED = 7
    INSUFFICIENT = 8


# outcome -> (HTTP status, problem slug, title); OK and REPLAY are answered 202.
REJECTIONS: Final[dict[Outcome, tuple[int, str, str]]] = {
    Outcome.SOLD_OUT: (409, "sold-out", "Sold out"),
    Outcome.LIMIT_REACHED: (409, "limit-reached", "Per-user limit reached"),
    Outcome.NOT_STARTED: (409, "not-started", "Sale has not started"),
    Outcome.ENDED: (409, "ended", "Sale has ended"),
    Outcome.NOT_FOUND: (404, "not-found", "No such flash sale"),
    Outcome.KEY_REUSED: (
        422,
        "idempotency-key-reused",
        "Idempotency-Key was used with a different request",
    ),
    Outcome.INSUFFICIENT: (409, "insufficient-stock", "Fewer units left than requested"),
}


def conserved(units: int, available: int, held: int, sold: int) -> bool:
    """The stock invariant: every unit is exactly one of available, held or sold."""
    return units == available + held + sold and min(available, held, sold) >= 0
