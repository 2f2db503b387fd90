"""Flash-sale state in Redis: stock, holds, buyers, outbox streams, via the lua/fs_*.lua scripts.

Every key of one sale shares the hash tag ``{fs:<id>}``, so each script touches one Redis
Cluster slot. Purchases from one event-loop tick are coalesced: one EVALSHA per sale decides
the whole batch, and the batches of all sales share one pipelined round trip. One round trip
per request is what caps a worker (DESIGN §6); one script call per purchase is what then
caps Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis

from nexuscart.adapters.redis_conn import Script
from nexuscart.adapters.redis_pipe import RedisPipe, ReplyError
from nexuscart.domain.flash_sale import Sale

STREAMS_INDEX: Final = b"fs:streams"  # set of every sale's outbox stream key
SALES_INDEX: Final = b"fs:sales"  # set of every sale id known to Redis

PURCHASE: Final = Script("fs_purchase")
RELEASE: Final = Script("fs_release")
CONFIRM: Final = Script("fs_confirm")
UPSERT: Final = Script("fs_upsert")


class SaleKeys:
    """The Redis keys of one sale (all in one cluster slot)."""

    __slots__ = ("buyers", "expiry", "holds", "meta", "outbox", "prefix", "sold", "stock")

    def __init__(self, sale_id: int):
        p = f"{{fs:{sale_id}}}"
        self.prefix = p
        self.meta = f"{p}:meta".encode()
        self.stock = f"{p}:stock".encode()
        self.buyers = f"{p}:buyers".encode()
        self.holds = f"{p}:holds".encode()
        self.expiry = f"{p}:expiry".encode()
        self.outbox = f"{p}:outbox".encode()
        self.sold = f"{p}:sold".encode()

    def base(self) -> list[bytes]:
        return [self.meta, self.stock, self.buyers, self.holds, self.expiry, self.outbox]

    def idem(self, user_id: int, key: str) -> bytes:
        return f"{self.prefix}:idem:{user_id}:{key}".encode()


class StockConflict(Exception):
    """Units cannot go below what is already held or sold."""


class PurchaseBatcher:
    """Coalesces purchase calls made in one loop tick: one script call per sale, one round trip."""

    def __init__(self, pipe: RedisPipe, max_batch: int = 512):
        self.pipe = pipe
        self.max_batch = max_batch
        self._pending: list[tuple[list[Any], asyncio.Future[list[int]]]] = []
        self._scheduled = False
        self.round_trips = 0

    def submit(self, keys_and_args: list[Any]) -> asyncio.Future[list[int]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[int]] = loop.create_future()
        self._pending.append((keys_and_args, fut))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._run(batch))
        task.add_done_callback(_consume_exception)

    async def _run(self, batch: list[tuple[list[Any], asyncio.Future[list[int]]]]) -> None:
        self.round_trips += 1
        try:
            results = await self._execute([kv for kv, _ in batch])
            redo = [i for i, r in enumerate(results) if _is_noscript(r)]
            if redo:
                # Redis restarted and lost its script cache: load once, redo those calls.
                # A NOSCRIPT call did not run, so redoing it cannot apply twice.
                await self.pipe.execute([("SCRIPT", "LOAD", PURCHASE.source)])
                again = await self._execute([batch[i][0] for i in redo])
                for i, r in zip(redo, again, strict=True):
                    results[i] = r
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), res in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(res)

    async def _execute(self, calls: list[list[Any]]) -> list[Any]:
        """One EVALSHA per sale for the whole batch; a reply (or error) per call, in order.

        Each call is ``purchase()``'s list: 6 sale keys, the idempotency key, then user id,
        quantity, event id, occurred_at, and the idempotency TTL (fs_purchase.lua's layout).
        """
        groups: dict[bytes, list[int]] = {}
        for i, kv in enumerate(calls):
            groups.setdefault(kv[0], []).append(i)
        commands = []
        for idx in groups.values():
            first = calls[idx[0]]
            keys = [*first[:6], *(calls[i][6] for i in idx)]
            args = [first[11]]
            for i in idx:
                args.extend(calls[i][7:11])
            commands.append(("EVALSHA", PURCHASE.sha, len(keys), *keys, *args))
        replies = await self.pipe.execute(commands)
        results: list[Any] = [None] * len(calls)
        for idx, reply in zip(groups.values(), replies, strict=True):
            for j, i in enumerate(idx):
                results[i] = reply if isinstance(reply, Exception) else reply[j]
        return results


def _is_noscript(reply: object) -> bool:
    return isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT")


def _consume_exception(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


class FlashSaleStore:
    """``pipe`` (the lean purchase connection, same Redis as ``client``) is needed only by
    ``purchase``: the services that expire, confirm and reconcile do without it."""

    def __init__(
        self, client: aioredis.Redis, pipe: RedisPipe | None = None, idem_ttl_s: int = 86_400
    ):
        self.client = client
        self.idem_ttl = str(idem_ttl_s).encode()
        self.batcher = PurchaseBatcher(pipe) if pipe is not None else None
        self._keys: dict[int, SaleKeys] = {}

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.pipe.close()

    def keys(self, sale_id: int) -> SaleKeys:
        k = self._keys.get(sale_id)
        if k is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            k = self._keys[sale_id] = SaleKeys(sale_id)
        return k

    async def upsert(self, sale: Sale) -> tuple[int, int, int, int]:
        k = self.keys(sale.sale_id)
        # The indexes first, as plain commands (they live in other cluster slots than the
        # sale): listed but not yet written is harmless (an empty stream, a sale that is not
        # found); written but not listed would leave its events unrelayed.
        index = self.client.pipeline(transaction=False)
        index.sadd(SALES_INDEX, sale.sale_id)
        index.sadd(STREAMS_INDEX, k.outbox)
        await index.execute()
        res = await UPSERT(
            self.client,
            [k.meta, k.stock],
            [
                sale.sale_id,
                sale.units,
                sale.starts_at_ms,
                sale.ends_at_ms,
                sale.per_user_limit,
                sale.price_cents,
                sale.currency,
                sale.sku,
                sale.hold_ttl_s * 1000,
                "1" if sale.ended else "0",
            ],
        )
        if int(res[0]) < 0:
            raise StockConflict(f"units below held + sold ({int(res[2]) + int(res[3])})")
        return int(res[0]), int(res[1]), int(res[2]), int(res[3])

    def purchase(
        self,
        sale_id: int,
        user_id: int,
        quantity: int,
        idem_key: str,
        event_id: str,
        occurred_at: str,
    ) -> asyncio.Future[list[int]]:
        """Returns [code, order_id, expires_at_ms, available_after] (see fs_purchase.lua)."""
        if self.batcher is None:
            raise RuntimeError("FlashSaleStore.purchase needs the store built with a RedisPipe")
        k = self.keys(sale_id)
        return self.batcher.submit(
            [
                k.meta,
                k.stock,
                k.buyers,
                k.holds,
                k.expiry,
                k.outbox,
                k.idem(user_id, idem_key),
                user_id,
                quantity,
                event_id,
                occurred_at,
                self.idem_ttl,
            ]
        )

    async def release(
        self,
        sale_id: int,
        order_id: int,
        reason: str,
        event_id: str,
        occurred_at: str,
        only_if_due: bool,
    ) -> int:
        k = self.keys(sale_id)
        return int(
            await RELEASE(
                self.client,
                k.base(),
                [order_id, reason, event_id, occurred_at, "1" if only_if_due else "0"],
            )
        )

    async def confirm(self, sale_id: int, order_id: int, event_id: str, occurred_at: str) -> int:
        k = self.keys(sale_id)
        return int(
            await CONFIRM(self.client, [*k.base(), k.sold], [order_id, event_id, occurred_at])
        )

    async def stock(self, sale_id: int) -> tuple[int, int, int] | None:
        vals = await self.client.hmget(
            self.keys(sale_id).stock,
            ["available", "held", "sold"],
        )
        if vals[0] is None:
            return None
        return int(vals[0]), int(vals[1] or 0), int(vals[2] or 0)

    async def available_many(self, sale_ids: Sequence[int]) -> list[int | None]:
        """Available units of many sales in one round trip (sold-out refresh)."""
        pipe = self.client.pipeline(transaction=False)
        for sid in sale_ids:
            pipe.hget(self.keys(sid).stock, "available")
        out = await pipe.execute()
        return [None if v is None else int(v) for v in out]

    async def buyers(self, sale_id: int) -> set[int]:
        raw = await self.client.hkeys(self.keys(sale_id).buyers)
        return {int(x) for x in raw}

    async def sale_ids(self) -> list[int]:
        raw = await self.client.smembers(SALES_INDEX)
        return sorted(int(x) for x in raw)

    async def due_holds(self, sale_id: int, now_ms: int, limit: int = 500) -> list[int]:
        raw: list[bytes] = await self.client.zrangebyscore(  # type: ignore[assignment]
            self.keys(sale_id).expiry, "-inf", now_ms, start=0, num=limit
        )
        return [int(x) for x in raw]

    async def totals(self, sale_id: int) -> dict[str, int]:
        """Everything conservation needs: units, counters, and sums over holds/sold entries."""
        k = self.keys(sale_id)
        pipe = self.client.pipeline(transaction=True)  # one consistent snapshot (MULTI)
        pipe.hget(k.meta, "units")
        pipe.hmget(k.stock, ["available", "held", "sold"])
        pipe.hvals(k.holds)
        pipe.hvals(k.sold)
        units, (avail, held, sold), holds, solds = await pipe.execute()
        return {
            "units": int(units or 0),
            "available": int(avail or 0),
            "held": int(held or 0),
            "sold": int(sold or 0),
            "held_entries": sum(int(v.split(b":")[1]) for v in holds),
            "sold_entries": sum(int(v.split(b":")[1]) for v in solds),
        }
