"""Carts in Redis (lua/co_cart.lua), under the everyday checkout's hash tag ``{co}`` so the
checkout script empties the cart it priced in the same atomic step (ADR 0014).

Keys (this module owns them): ``{co}:cart:u:<user_id>`` (a signed-in shopper's cart) and
``{co}:cart:g:<token>`` (a guest's, by an opaque random token). A cart is a hash: ``_v``
its version, ``_c`` its currency, one field per SKU (domain.cart.encode_line). Every change
renews its expiry (``ttl_s`` of inactivity); reading it does too. ``_k`` keeps the
Idempotency-Key of the last change: a retry of it is not applied twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple, cast

import redis.asyncio as aioredis

from nexuscart.adapters.redis_conn import Script
from nexuscart.adapters.redis_pipe import Commands, RedisPipe
from nexuscart.domain.cart import MAX_LINES, MAX_QUANTITY, StoredLine, decode_line

CART: Final = Script("co_cart")

_OUTCOMES: Final = {1: "mixed-currency", 2: "quantity-limit", 3: "cart-full", 4: "not-in-cart"}


def user_cart(user_id: int) -> bytes:
    return f"{{co}}:cart:u:{user_id}".encode()


def guest_cart(token: str) -> bytes:
    return f"{{co}}:cart:g:{token}".encode()


class Cart(NamedTuple):
    version: str  # "" for a cart that does not exist
    lines: list[StoredLine]
    # units available per SKU from the checkout's counters (``{co}:s:<sku>``), read in the
    # same script as the cart; a SKU the counters do not know is absent (None: not read)
    available: dict[str, int] | None = None


class CartRefused(Exception):
    """The change breaks a cart rule (``reason``: mixed-currency | quantity-limit |
    cart-full | not-in-cart); nothing changed."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CartStore:
    def __init__(
        self,
        client: aioredis.Redis,
        ttl_s: int,
        max_lines: int = MAX_LINES,
        pipe: RedisPipe | None = None,
    ):
        self.client = client
        self.ttl_ms = ttl_s * 1000
        self.max_lines = max_lines
        self.commands = Commands(client, pipe)

    async def get(self, key: bytes) -> Cart:
        return (await self.get_with(key))[0]

    async def peek(self, key: bytes) -> Cart:
        """The cart as it is, its expiry left alone: for readers that are not the shopper
        using their cart (recommendations for it)."""
        (raw,) = await self.commands.checked([("HGETALL", key)])
        return _cart(_hash(raw))

    async def get_with(self, key: bytes, *also: Sequence[Any]) -> tuple[Cart, list[Any]]:
        """The cart (its expiry renewed) and the replies of ``also``, commands sent in the
        same batch: one round trip and no task per read (the checkout's first step)."""
        raw, _, *more = await self.commands.checked(
            [("HGETALL", key), ("PEXPIRE", key, self.ttl_ms), *also]
        )
        return _cart(_hash(raw)), more

    async def _run(self, keys: list[bytes], args: list[str | int]) -> list[Any]:
        res = cast("list[Any]", await self.commands.script(CART, keys, args))
        if res[0] != 0:
            raise CartRefused(_OUTCOMES[int(res[0])])
        return res

    async def _change(self, keys: list[bytes], args: list[str | int]) -> Cart:
        """Run a change; -> the cart after it, with its lines' availability (the script
        answers both)."""
        res = await self._run(keys, args)
        flat, levels = res[4], res[5]
        cart = _cart(dict(zip(flat[::2], flat[1::2], strict=True)))
        available: dict[str, int] = {}
        for ln, raw in zip(cart.lines, levels, strict=True):
            if raw is not None:
                _, on_hand, r, s = raw.split(b":")
                available[ln.sku] = max(0, int(on_hand) - int(r) - int(s))
        return cart._replace(available=available)

    async def read(self, key: bytes) -> Cart:
        """The cart with its lines' availability, its expiry renewed (one script call)."""
        return await self._change([key], self._head("get", ""))

    async def add(
        self,
        key: bytes,
        sku: str,
        product_id: int,
        quantity: int,
        price: int,
        currency: str,
        idem: str = "",
    ) -> Cart:
        """Add units of a SKU at today's price (the price the shopper now has seen). A retry
        with the Idempotency-Key of the cart's last change is not applied again."""
        args = [*self._head("add", idem), sku, product_id, quantity, price, currency]
        return await self._change([key], args)

    async def set_quantity(self, key: bytes, sku: str, quantity: int, idem: str = "") -> Cart:
        """Set a line's units (0 removes it); its seen price stays."""
        return await self._change([key], [*self._head("set", idem), sku, 0, quantity, 0, ""])

    async def merge(self, into: bytes, guest: bytes) -> tuple[int, int]:
        """Move a guest cart's lines into a shopper's (units added, capped; lines in another
        currency or beyond the line limit left out), and delete the guest cart.
        -> (lines merged, lines left out); (0, 0) once the guest cart is gone."""
        res = await self._run([into, guest], self._head("merge", ""))
        return int(res[2]), int(res[3])

    def _head(self, op: str, idem: str) -> list[str | int]:
        return [op, self.ttl_ms, self.max_lines, MAX_QUANTITY, idem]


def _hash(raw: Any) -> dict[bytes, bytes]:
    if isinstance(raw, list):  # hiredis answers a hash as a flat list
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    return cast("dict[bytes, bytes]", raw)


def _cart(raw: dict[bytes, bytes]) -> Cart:
    version = ""
    lines: list[StoredLine] = []
    for k, v in raw.items():
        if k == b"_v":
            version = v.decode()
        elif k not in (b"_c", b"_k"):
            lines.append(decode_line(k.decode(), v.decode()))
    return Cart(version, lines)
