"""Redis side of the catalog: live stock per SKU, and the change channel that keeps every
edge worker's product cache fresh (docs/catalog.md).

Keys (this module owns them):

- ``cat:stk:<sku>``: ``"<stock_version>:<stock>:<low_stock_threshold>"``, written after
  PostgreSQL committed the level (Lua ``cat_stock_set``: only a newer version replaces an
  older one). PostgreSQL is the truth (``variants.stock``, audited); Redis is what the hot
  reads see, one MGET per batch.
- channel ``cat:changed``: a product id per message, published after every committed write;
  each edge worker drops that product from its cache on receipt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

import redis.asyncio as aioredis

from nexuscart.adapters.redis_conn import Script
from nexuscart.adapters.redis_pipe import RedisPipe

STOCK_PREFIX: Final = b"cat:stk:"
CHANGED_CHANNEL: Final = b"cat:changed"
_SET: Final = Script("cat_stock_set")
LOAD_BATCH: Final = 500  # SKUs per script call when loading many


class StockLevel(NamedTuple):
    version: int
    stock: int
    threshold: int


def stock_key(sku: str) -> bytes:
    return STOCK_PREFIX + sku.encode()


def parse_level(raw: bytes | None) -> StockLevel | None:
    if raw is None:
        return None
    v, s, t = raw.split(b":")
    return StockLevel(int(v), int(s), int(t))


class CatalogStore:
    def __init__(self, client: aioredis.Redis, pipe: RedisPipe | None = None):
        self.client = client
        self.pipe = pipe  # the lean connection for the hot reads (GET /inventory, pages)
        self._set = _SET.for_client(client)

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
        return n

    async def levels(self, skus: Sequence[str]) -> list[StockLevel | None]:
        """Each SKU's level (None: Redis does not know it). One MGET."""
        if not skus:
            return []
        keys = [stock_key(s) for s in skus]
        if self.pipe is not None:
            (raw,) = await self.pipe.execute([(b"MGET", *keys)])
            if isinstance(raw, Exception):
                raise raw
        else:
            raw = await self.client.mget(keys)
        return [parse_level(r) for r in raw]

    async def publish_changed(self, product_id: int) -> None:
        await self.client.publish(CHANGED_CHANNEL, str(product_id).encode())

    async def forget(self, skus: Sequence[str]) -> None:
        """Drop SKUs' levels (tests; a SKU whose variant is gone)."""
        if skus:
            await self.client.delete(*(stock_key(s) for s in skus))
