"""Redis side of the catalog: live stock per SKU, and the change channel that keeps every
edge worker's product cache fresh (docs/catalog.md).

Keys (this module owns them):

- ``cat:stk:<sku>``: ``"<stock_version>:<stock>:<low_stock_threshold>"``, written after
  PostgreSQL committed the level (Lua ``cat_stock_set``: only a newer version replaces an
  older one). PostgreSQL is the truth (``variants.stock``, audited); Redis is what the hot
  reads see, one MGET per batch.
- stream ``cat:changes``: a product id per entry (field ``p``), added after every committed
  write of the product or its stock; each edge worker follows it with a blocking XREAD and
  drops that product from its page cache. A stream rather than pub/sub: a worker whose
  read failed resumes where it was (and serves uncached meanwhile). Capped near
  CHANGES_MAXLEN entries.
- ``cat:{p<id>}:page``: the product's page as one worker built it, shared with the others
  (``share_page``; its layout is the caller's), expiring within a worker's page TTL;
  ``cat:{p<id>}:gen``: the product's generation, moved on by every announced change, which
  deletes the shared page first (``publish_changed``). Tagged per product: the put script's
  two keys share a slot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, NamedTuple, cast

import redis.asyncio as aioredis

from nexuscart.adapters.key_mirror import KeyMirror
from nexuscart.adapters.redis_conn import Script
from nexuscart.adapters.redis_pipe import RedisPipe, TickBatch

STOCK_PREFIX: Final = b"cat:stk:"
CHANGES_STREAM: Final = b"cat:changes"
CHANGES_MAXLEN: Final = 100_000
_SET: Final = Script("cat_stock_set")
_PAGE_PUT: Final = Script("cat_page_put")
LOAD_BATCH: Final = 500  # SKUs per script call when loading many
KEYS_MAX: Final = 200_000  # SKUs whose keys a store remembers (cleared whole when full)
_ABSENT: Final[Any] = object()  # a key without a copy (None is a copy: no such key)


class StockLevel(NamedTuple):
    version: int
    stock: int
    threshold: int


def stock_key(sku: str) -> bytes:
    return STOCK_PREFIX + sku.encode()


def page_key(product_id: int) -> bytes:
    return b"cat:{p%d}:page" % product_id


def page_gen_key(product_id: int) -> bytes:
    return b"cat:{p%d}:gen" % product_id


def parse_level(raw: bytes | None) -> StockLevel | None:
    if raw is None:
        return None
    v, s, t = raw.split(b":")
    return StockLevel(int(v), int(s), int(t))


class CatalogStore:
    """``held``: where another store keeps the units each SKU has committed (reserved or
    sold by the everyday checkout: the key of a SKU, and its units from that key's value).
    With it, ``levels`` answers what is available (``max(0, stock - held)``) from the same
    MGET; without it, the seller's declared stock. ``mirror``: told every level written
    (the everyday checkout keeps a copy of each SKU's level beside its counters)."""

    def __init__(
        self,
        client: aioredis.Redis,
        pipe: RedisPipe | None = None,
        held: tuple[Callable[[str], bytes], Callable[[bytes | None], int]] | None = None,
        mirror: Callable[[Sequence[tuple[str, StockLevel]]], Awaitable[None]] | None = None,
        copies: KeyMirror | None = None,
        plain: RedisPipe | None = None,
    ):
        self.client = client
        self.pipe = pipe  # the lean connection for the hot reads (GET /inventory, pages)
        self.held = held
        self.mirror = mirror  # also told every level written (the checkout's copy)
        # this worker's copies of the values ``pipe`` read, dropped as Redis pushes changes
        # (the pipe must track them: RedisPipe(tracking=(copies.invalidate, copies.reset)))
        self.copies = copies
        self._batch = TickBatch(pipe) if pipe is not None else None
        # reads that must not be tracked (shared pages): a lean connection without tracking
        self._plain = TickBatch(plain) if plain is not None else None
        self._set = _SET.for_client(client)
        self._keys: dict[str, tuple[bytes, bytes]] = {}  # SKU -> (stock key, held key)
        self._page_put = _PAGE_PUT.for_client(client)

    async def set_levels(self, levels: Iterable[tuple[str, StockLevel]]) -> int:
        """Write SKUs' levels where Redis has an older version (or none); returns how many
        were written."""
        written = 0
        batch: list[tuple[str, StockLevel]] = []
        for item in levels:
            batch.append(item)
            if len(batch) >= LOAD_BATCH:
                written += await self._set_batch(batch)
                batch = []
        if batch:
            written += await self._set_batch(batch)
        return written

    async def _set_batch(self, batch: Sequence[tuple[str, StockLevel]]) -> int:
        keys = [stock_key(sku) for sku, _ in batch]
        args: list[int] = []
        for _, lv in batch:
            args += [lv.version, lv.stock, lv.threshold]
        n: int = await self._set(keys=keys, args=args)
        if self.mirror is not None:
            await self.mirror(batch)
        return n

    def keys(self, skus: Sequence[str]) -> list[bytes]:
        """The keys ``levels`` reads for these SKUs (a product page keeps them, built once):
        each SKU's stock key, then each one's held key."""
        known = self._keys
        pairs = []
        for s in skus:
            pair = known.get(s)
            if pair is None:
                pair = (stock_key(s), self.held[0](s) if self.held is not None else b"")
                if len(known) >= KEYS_MAX:
                    known.clear()
                known[s] = pair
            pairs.append(pair)
        if self.held is None:
            return [p[0] for p in pairs]
        return [p[0] for p in pairs] + [p[1] for p in pairs]

    async def levels(self, skus: Sequence[str]) -> list[StockLevel | None]:
        """Each SKU's level (None: Redis does not know it). One MGET."""
        if not skus:
            return []
        return self.parse(await self.raw(self.keys(skus)), len(skus))

    async def raw(self, keys: list[bytes]) -> list[bytes | None]:
        """The values of ``keys``: one MGET, sent in one write with every other read of the
        same event-loop tick on the pipe (a caller may compare them with the last ones it
        read before parsing them); this worker's copies answer the keys they have."""
        copies = self.copies
        if copies is None or self._batch is None:
            return await self._mget(keys, self._batch)
        values = copies.get(keys)
        if values is not None:
            return values
        # the copies as they are now: a push may drop some while the rest is read
        known = copies.values
        got = [known.get(k, _ABSENT) for k in keys]
        missing = [k for k, v in zip(keys, got, strict=True) if v is _ABSENT]
        began = copies.begin()
        reply = await self._mget(missing, self._batch)
        copies.put(missing, reply, began)
        read = iter(reply)
        return [next(read) if v is _ABSENT else v for v in got]

    async def _mget(self, keys: list[bytes], batch: TickBatch | None) -> list[bytes | None]:
        if batch is None:
            return cast("list[bytes | None]", await self.client.mget(keys))
        (reply,) = await batch.execute([(b"MGET", *keys)])
        if isinstance(reply, Exception):
            raise reply
        return cast("list[bytes | None]", reply)

    def parse(self, raw: list[bytes | None], n: int) -> list[StockLevel | None]:
        """``n`` SKUs' levels from the values of their ``keys``."""
        if self.held is None:
            return [None if r is None else parse_level(r) for r in raw]
        units = self.held[1]
        out: list[StockLevel | None] = []
        for r, h in zip(raw[:n], raw[n:], strict=True):
            if r is None:
                out.append(None)
                continue
            v, s, t = r.split(b":")  # parse_level's format, inlined: a hot loop
            out.append(StockLevel(int(v), max(0, int(s) - units(h)), int(t)))
        return out

    async def publish_changed(self, product_id: int) -> None:
        """Announce a committed change: the shared page goes and the generation moves on
        before the stream entry is added (in that order, on one connection), so a worker
        that drops its page on the entry builds from PostgreSQL, not from the old page."""
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(page_gen_key(product_id))
        pipe.delete(page_key(product_id))
        pipe.xadd(
            CHANGES_STREAM,
            {b"p": str(product_id).encode()},
            maxlen=CHANGES_MAXLEN,
            approximate=True,
        )
        await pipe.execute()

    async def shared_page(self, product_id: int) -> tuple[bytes | None, bytes]:
        """The product's shared page (None: none) and its generation, in one read (sent with
        the other misses of this event-loop tick): a page built from PostgreSQL after this
        read may be shared under that generation. Not on the stock pipe: its reads are
        tracked for the stock copies, and these keys' changes are no stock change to push."""
        page, gen = await self._mget([page_key(product_id), page_gen_key(product_id)], self._plain)
        return page, gen or b"0"

    async def share_page(self, product_id: int, gen: bytes, page: bytes, ttl_ms: int) -> bool:
        """Store a page for the other workers, unless the product changed since ``gen``
        was read (False then)."""
        keys = [page_key(product_id), page_gen_key(product_id)]
        return bool(await self._page_put(keys=keys, args=[gen, page, ttl_ms]))

    async def changes_head(self) -> bytes:
        """The id of the newest change ("0-0" when none): where a follower starts."""
        newest = cast("list[Any]", await self.client.xrevrange(CHANGES_STREAM, count=1))
        return bytes(newest[0][0]) if newest else b"0-0"

    async def read_changes(
        self, last_id: bytes, block_ms: int, count: int = 1000
    ) -> tuple[bytes, list[int]]:
        """The product ids changed after ``last_id`` (waiting up to ``block_ms`` for one),
        and the id to continue from."""
        reply = cast(
            "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None",
            await self.client.xread({CHANGES_STREAM: last_id}, count=count, block=block_ms),
        )
        ids: list[int] = []
        for _, entries in reply or ():
            for entry_id, fields in entries:
                last_id = entry_id
                raw = fields.get(b"p")
                if raw is not None and raw.isdigit():
                    ids.append(int(raw))
        return last_id, ids

    async def forget(self, skus: Sequence[str]) -> None:
        """Drop SKUs' levels (tests; a SKU whose variant is gone)."""
        if skus:
            await self.client.delete(*(stock_key(s) for s in skus))
