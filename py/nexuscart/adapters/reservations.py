"""Everyday stock reservations in Redis: the checkout (lua/co_checkout.lua) and the end of
each reservation (lua/co_end.lua: confirmed, released, or a sale given back).

This module owns the keys of the everyday checkout. Every key shares the hash tag ``{co}``,
so each script touches one Redis Cluster slot (ADR 0014: the everyday checkout is one slot):

- ``{co}:s:<sku>``: ``"<version>:<on_hand>:<reserved>:<sold>"``. ``on_hand`` is the
  catalog's level (``cat:stk:<sku>``, written after PostgreSQL's audited adjustments),
  copied in by every writer of that level (``mirror_levels``, called by CatalogStore) and by
  a checkout that brings a newer version; ``reserved`` and ``sold`` are this store's.
  ``available = max(0, on_hand - reserved - sold)``. The catalog's value is never
  decremented: a reload of it from PostgreSQL cannot erase a reservation.
- ``{co}:res`` (hash): order id -> ``"<user_id>|<promo code>|<sku>:<qty>,..."``, the open
  reservations; ``{co}:exp`` (sorted set): order id by ``expires_at_ms``.
- ``{co}:sold`` (hash): order id -> the record of a confirmed order (``"R|"`` before it once
  its units were given back by ``restore_sold``).
- ``{co}:out`` (capped stream): ``p`` -> the product of an SKU a checkout left with none
  available, the change the recommendation workers' availability snapshots follow
  (recs_avail.lua); a reservation that leaves units announces nothing.
- ``{co}:seq``: the order sequence; everyday order ids are ``2^52 + seq`` (flash-sale order
  ids stay below 2^52), exact as Lua and JSON numbers.
- ``{co}:promo`` (hash): code -> ``"<active>|<starts_ms>|<ends_ms>|<limit>|<per_user>"``
  (written by adapters/promotions.py); ``{co}:pused``: code -> uses; ``{co}:puser``:
  ``"<code>|<user_id>"`` -> uses. A use is counted by the checkout and given back by a
  release or a restore, in the same script as the stock.
- ``{co}:idem:<user_id>:<key>``: the answer of a checkout, for its Idempotency-Key.
- ``{co}:outbox``: the outbox stream (OrderPlaced, StockSold, StockReleased), relayed to
  orders.v1 by services/outbox_relay like the flash sales' (``register_outbox`` lists it in
  their stream index, ``fs:streams``, before the first checkout writes to it).
- carts (adapters/carts.py) also live under ``{co}``: the checkout empties one.

The interface the inventory consumer uses (mirrors FlashSaleStore's confirm/release):

- ``confirm(order_id, user_id, event_id, occurred_at) -> int``: units sold; a repeat answers
  again and writes no second event; -1 when the reservation had already ended (released,
  or past its expiry: a late payment).
- ``release(order_id, user_id, reason, event_id, occurred_at, only_if_due) -> int``: units
  returned (0: nothing to release, or not yet due with ``only_if_due``); the promotion use
  is given back in the same script. ``reason``: expired | cancelled | payment_failed.
- ``due(now_ms, limit) -> [(user_id, order_id)]``: reservations whose expiry has passed.
- ``restore_sold(order_id, user_id, event_id, occurred_at) -> int``: a paid order cancelled
  before shipment and refunded: its sold units go back on sale, the promotion use is given
  back, and a StockReleased (reason cancelled, sale_id None) is written; a repeat answers
  the same units and writes nothing; 0 for an order never sold.
- ``levels(skus) -> {sku: (on_hand, available, reserved, sold)}`` for reconciliation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final, NamedTuple, cast

import redis.asyncio as aioredis

from nexuscart.adapters.catalog_store import STOCK_PREFIX, StockLevel, parse_level, stock_key
from nexuscart.adapters.flash_sales import STREAMS_INDEX
from nexuscart.adapters.redis_conn import Script
from nexuscart.adapters.redis_pipe import Commands, RedisPipe

TAG: Final = "{co}"
RES: Final = b"{co}:res"
EXP: Final = b"{co}:exp"
SOLD: Final = b"{co}:sold"
SEQ: Final = b"{co}:seq"
OUTBOX: Final = b"{co}:outbox"
PROMO: Final = b"{co}:promo"
PUSED: Final = b"{co}:pused"
PUSER: Final = b"{co}:puser"
SOLD_OUT: Final = b"{co}:out"
ORDER_BASE: Final = 1 << 52  # everyday order ids: 2^52 + seq (co_checkout.lua)
MAX_LINES: Final = 100  # lines of one checkout (one script call; carts allow fewer)

CHECKOUT: Final = Script("co_checkout")
END: Final = Script("co_end")
LEVEL_SET: Final = Script("co_level_set")


def level_key(sku: str) -> bytes:
    return f"{{co}}:s:{sku}".encode()


def idem_key(user_id: int, key: str) -> bytes:
    return f"{{co}}:idem:{user_id}:{key}".encode()


def held_units(raw: bytes | None) -> int:
    """Reserved + sold units of a SKU level value (0 when there is none)."""
    if raw is None:
        return 0
    _, _, r, s = raw.split(b":")
    return int(r) + int(s)


class Line(NamedTuple):
    """One line as the checkout reserves and the OrderPlaced event carries it; ``version``
    and ``on_hand`` are the catalog's level as the caller read it (None: not read)."""

    sku: str
    product_id: int
    quantity: int
    unit_price_minor: int
    version: int | None
    on_hand: int | None


class Placed(NamedTuple):
    """A checkout's answer (new, or the replay of an earlier one with its key)."""

    order_id: int
    expires_at_ms: int
    currency: str
    subtotal_minor: int
    discount_minor: int
    total_minor: int
    promo_code: str | None
    replayed: bool


class Short(NamedTuple):
    """Lines the stock cannot cover; nothing was reserved."""

    lines: list[tuple[str, int]]  # (sku, units available)


class Rejected(NamedTuple):
    """The checkout was refused before any stock was looked at. ``reason``:
    idempotency-key-reused | promo-used-up | promo-user-limit | promo-unavailable |
    cart-changed."""

    reason: str


CheckoutResult = Placed | Short | Rejected

_REJECTED: Final = {
    3: "idempotency-key-reused",
    4: "promo-used-up",
    5: "promo-user-limit",
    6: "promo-unavailable",
    7: "cart-changed",
}


def answer_read(user_id: int, idem: str) -> tuple[str, bytes]:
    """The command reading a checkout's stored answer (``stored_answer`` parses its reply),
    for a caller that batches it with its own reads."""
    return ("GET", idem_key(user_id, idem))


def stored_answer(raw: bytes | None) -> tuple[str, Placed] | None:
    """(fingerprint, answer) of a stored checkout answer; None when there is none."""
    if raw is None:
        return None
    return raw.split(b"|", 1)[0].decode(), parse_answer(raw)


def parse_answer(raw: bytes) -> Placed:
    """A stored checkout answer (``fp|order|expires|currency|subtotal|discount|total|promo``)."""
    _, oid, exp, cur, sub, disc, tot, code = raw.decode().split("|")
    return Placed(int(oid), int(exp), cur, int(sub), int(disc), int(tot), code or None, True)


class Level(NamedTuple):
    on_hand: int
    available: int
    reserved: int
    sold: int


class ReservationStore:
    def __init__(
        self, client: aioredis.Redis, idem_ttl_s: int = 86_400, pipe: RedisPipe | None = None
    ):
        self.client = client
        self.idem_ttl = idem_ttl_s
        self.commands = Commands(client, pipe)
        self._registered = False
        self._registering = asyncio.Lock()

    async def register_outbox(self) -> None:
        """List ``{co}:outbox`` among the streams the outbox relay reads (idempotent; done
        before this process's first checkout writes to it, so no entry goes unrelayed).
        Concurrent first callers wait for one SADD: each sending its own took a pooled
        connection each (256 at the start of a checkout storm), and the pool made new ones."""
        async with self._registering:
            if not self._registered:
                await self.client.sadd(STREAMS_INDEX, OUTBOX)
                self._registered = True

    async def checkout(
        self,
        *,
        user_id: int,
        idem: str,
        fingerprint: str,
        lines: Sequence[Line],
        currency: str,
        subtotal_minor: int,
        discount_minor: int,
        total_minor: int,
        promo_code: str | None,
        ttl_ms: int,
        event_id: str,
        occurred_at: str,
        cart_key: bytes | None = None,
        cart_version: str = "",
    ) -> CheckoutResult:
        """Reserve every line, all or nothing, count the promotion's use, write OrderPlaced,
        and (``cart_key`` with its version as read) empty the cart, in one script.
        ``fingerprint`` tells a replay of this request (same answer) from another request
        under the same key (refused). SKUs must be distinct and free of ``:,|``."""
        if not 1 <= len(lines) <= MAX_LINES:
            raise ValueError(f"1 to {MAX_LINES} lines")
        if len({ln.sku for ln in lines}) != len(lines) or "|" in fingerprint:
            raise ValueError("duplicate SKU, or '|' in the fingerprint")
        keys: list[bytes] = [
            RES,
            EXP,
            SEQ,
            OUTBOX,
            PROMO,
            PUSED,
            PUSER,
            idem_key(user_id, idem),
            cart_key or f"{TAG}:cart:none".encode(),
            SOLD_OUT,
        ]
        args: list[str | int] = [
            self.idem_ttl,
            user_id,
            event_id,
            occurred_at,
            ttl_ms,
            fingerprint,
            currency,
            subtotal_minor,
            discount_minor,
            total_minor,
            promo_code or "",
            cart_version if cart_key is not None else "",
        ]
        for ln in lines:
            keys.append(level_key(ln.sku))
            args += [
                ln.sku,
                ln.product_id,
                ln.quantity,
                ln.unit_price_minor,
                "" if ln.version is None else ln.version,
                "" if ln.on_hand is None else ln.on_hand,
            ]
        if not self._registered:
            await self.register_outbox()
        res = cast("list[object]", await self.commands.script(CHECKOUT, keys, args))
        code = int(cast(int, res[0]))
        if code == 0:
            return Placed(
                int(cast(int, res[1])),
                int(cast(int, res[2])),
                currency,
                subtotal_minor,
                discount_minor,
                total_minor,
                promo_code,
                False,
            )
        if code == 1:
            out = []
            for item in res[1:]:
                sku, avail = cast(bytes, item).decode().rsplit(":", 1)
                out.append((sku, int(avail)))
            return Short(out)
        if code == 2:
            return parse_answer(cast(bytes, res[1]))
        return Rejected(_REJECTED[code])

    # -- the end of a reservation (the inventory consumer) ----------------------------------

    async def _run_end(
        self, action: str, record: bytes, order_id: int, user_id: int, tail: list[str]
    ) -> int:
        body = record[2:] if record.startswith(b"R|") else record
        skus = [part.split(b":")[0].decode() for part in body.split(b"|", 2)[2].split(b",")]
        keys = [RES, EXP, SOLD, OUTBOX, PUSED, PUSER, *(level_key(s) for s in skus)]
        args = [action, order_id, user_id, *tail[:2], body, *tail[2:]]
        return int(await self.commands.script(END, keys, args))

    async def _records(self, order_id: int) -> tuple[bytes | None, bytes | None]:
        oid = str(order_id)
        held, sold = await self.commands.checked([("HGET", RES, oid), ("HGET", SOLD, oid)])
        return held, sold

    async def confirm(self, order_id: int, user_id: int, event_id: str, occurred_at: str) -> int:
        """Units sold by this order (again on a repeat, without a second event), or -1 when
        the reservation had already ended (released or expired: a late payment)."""
        held, sold = await self._records(order_id)
        record = sold or held
        if record is None:
            return -1
        return await self._run_end("confirm", record, order_id, user_id, [event_id, occurred_at])

    async def release(
        self,
        order_id: int,
        user_id: int,
        reason: str,
        event_id: str,
        occurred_at: str,
        only_if_due: bool,
    ) -> int:
        """Units returned (0: nothing to release, or not yet due with ``only_if_due``); the
        promotion use is given back in the same script."""
        held, _ = await self._records(order_id)
        if held is None:
            return 0
        tail = [event_id, occurred_at, reason, "1" if only_if_due else "0"]
        return await self._run_end("release", held, order_id, user_id, tail)

    async def restore_sold(
        self, order_id: int, user_id: int, event_id: str, occurred_at: str
    ) -> int:
        """A sold order given back (cancelled before shipment, refunded): its units are on
        sale again and its promotion use is given back; the same units again on a repeat
        (nothing written); 0 for an order that was never sold."""
        _, sold = await self._records(order_id)
        if sold is None:
            return 0
        return await self._run_end("restore", sold, order_id, user_id, [event_id, occurred_at])

    async def due(self, now_ms: int, limit: int = 500) -> list[tuple[int, int]]:
        """(user_id, order_id) of reservations whose expiry is at or before ``now_ms``."""
        raw = cast(
            "list[bytes]",
            await self.client.zrangebyscore(EXP, "-inf", now_ms, start=0, num=limit),
        )
        if not raw:
            return []
        records = cast("list[bytes | None]", await self.client.hmget(RES, raw))
        out = []
        for oid, rec in zip(raw, records, strict=True):
            if rec is not None:
                out.append((int(rec.split(b"|", 1)[0]), int(oid)))
        return out

    async def mirror_levels(self, levels: Sequence[tuple[str, StockLevel]]) -> None:
        """Copy the catalog's levels (just written to ``cat:stk:<sku>``) into the SKU
        counters, newer versions only: a checkout then needs no catalog read, and a
        correction reaches the counters even if no checkout brings it."""
        if levels:
            args: list[int] = []
            for _, lv in levels:
                args += [lv.version, lv.stock]
            await self.commands.script(LEVEL_SET, [level_key(s) for s, _ in levels], args)

    async def catalog_levels(self, skus: Sequence[str]) -> list[StockLevel | None]:
        """The catalog's level of each SKU (None: not in Redis), as the checkout passes it."""
        (raw,) = await self.commands.checked([("MGET", *(stock_key(s) for s in skus))])
        return [parse_level(r) for r in raw]

    async def levels(self, skus: Sequence[str]) -> dict[str, Level]:
        """Each SKU's (on_hand, available, reserved, sold), one MGET: on_hand is the newer of
        the catalog's level and this store's copy."""
        if not skus:
            return {}
        keys = [STOCK_PREFIX + s.encode() for s in skus] + [level_key(s) for s in skus]
        raw = cast("list[bytes | None]", await self.client.mget(keys))
        n = len(skus)
        out: dict[str, Level] = {}
        for i, sku in enumerate(skus):
            cat, own = parse_level(raw[i]), raw[n + i]
            version, on_hand, r, s = -1, 0, 0, 0
            if own is not None:
                v, oh, rr, ss = own.split(b":")
                version, on_hand, r, s = int(v), int(oh), int(rr), int(ss)
            if cat is not None and cat.version > version:
                on_hand = cat.stock
            out[sku] = Level(on_hand, max(0, on_hand - r - s), r, s)
        return out
