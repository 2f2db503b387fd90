"""Redis side of the recommendations: the live signals the consumer keeps current and the
serving reads (docs/recommendations.md).

Keys (this module owns them; ``recs:model:*`` belong to ``recs_registry``):

- ``recs:seen:<event id>``: an applied event (7 days): redeliveries change nothing.
- ``recs:recent:<user>``: zset product -> ms of the shopper's last event on it (20 kept).
- ``recs:rbuy:<user>``: zset product -> ms of the shopper's recent orders (20 kept).
- ``recs:bought:<user>``: set of products the shopper bought (refunds take them out).
- ``recs:covis:<product>``: zset product -> weighted count of "viewed/carted/bought
  together" (one shopper, within the co-visitation window); 200 strongest kept.
- ``recs:cobuy:<product>``: zset product -> orders together (same order, or one shopper's
  orders within the window); 200 kept.
- ``recs:trend:<category>``: zset product -> forward-decayed weight (``domain.recs``).
- ``recs:order:<order>``: ``"<user>:<product>,<product>"`` of an order (for its refund).
- ``recs:item:<product>``: hash ``c`` category, ``s`` status, ``k`` its SKUs
  (comma-separated), ``x`` 1 for a consumable (from catalog.v1);
  ``recs:sku:<sku>``: its product (a flash-sale order names a SKU only);
  ``recs:items``: set of every product with a record (the serving workers' sweep);
  stream ``recs:changes``: a product id per entry (field ``p``) after each change of its
  record, capped near CHANGES_MAXLEN (the serving workers' availability snapshots follow it).
- stream ``recs:log``: every applied signal (``u`` user, ``p`` product, ``t`` ms, ``k``
  kind), capped near RECS_LOG_MAXLEN: the offline store's recent window.

A signal touches keys of several products in one Lua script (``recs_signal``): atomic, and
the event id check makes it idempotent. Under Redis Cluster these keys would need one slot
per shopper and product groups; this store assumes one Redis (docs/recommendations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple, cast

import redis.asyncio as aioredis

from nexuscart.adapters.redis_conn import Script
from nexuscart.adapters.redis_pipe import Commands, RedisPipe
from nexuscart.domain import recs as rules

_SIGNAL: Final = Script("recs_signal")
_REFUND: Final = Script("recs_refund")
_SERVE: Final = Script("recs_serve")
# a shopper's bought set up to this size comes back whole from a serving call (serve)
BOUGHT_WHOLE_MAX: Final = 64
HEAVY_BUYERS_MAX: Final = 65_536
_AVAIL: Final = Script("recs_avail")
SEEN_TTL_S: Final = 7 * 86_400
STATE_TTL_S: Final = 90 * 86_400
NEIGHBOURS_MAX: Final = 200
LOG_KEY: Final = b"recs:log"
ITEMS_KEY: Final = b"recs:items"
CHANGES_KEY: Final = b"recs:changes"
CHANGES_MAXLEN: Final = 100_000


def covis_key(pid: int) -> bytes:
    return b"recs:covis:%d" % pid


def cobuy_key(pid: int) -> bytes:
    return b"recs:cobuy:%d" % pid


def trend_key(category: int) -> bytes:
    return b"recs:trend:%d" % category


def recent_key(user: int) -> bytes:
    return b"recs:recent:%d" % user


def bought_key(user: int) -> bytes:
    return b"recs:bought:%d" % user


class Item(NamedTuple):
    product_id: int
    category_id: int
    status: str
    skus: Sequence[str]
    consumable: bool


class Live(NamedTuple):
    """What ``serve`` read: the shopper's recent items (newest first), the viewed-together
    and bought-together neighbours of each seed (the context product, then the recent
    items), by rank, trending in the seeds' categories, and what the shopper bought: all of
    it when the set is small, else those of the neighbours and candidates (``serve``)."""

    recent: list[int]
    covis: list[list[int]]
    cobuy: list[list[int]]
    trend: list[list[int]]
    bought: set[int]


class Cursors(NamedTuple):
    """Where an availability snapshot is in each change source ("": not started)."""

    catalog: str = ""
    records: str = ""
    sold_out: str = ""


class Checked(NamedTuple):
    """One ``availability`` read: the cursors to continue from, the sweep's cursor ("0":
    a round of every product is complete), whether a source had more (``more``) or lost
    changes (``gap``), and per product checked: 0 never recommend, 1 may, 2 may and is a
    consumable."""

    cursors: Cursors
    sweep: str
    more: bool
    gap: bool
    flags: list[tuple[int, int]]


class RecsStore:
    def __init__(
        self, redis: aioredis.Redis, log_maxlen: int = 2_000_000, pipe: RedisPipe | None = None
    ) -> None:
        self.redis = redis
        self.log_maxlen = log_maxlen
        self._signal = _SIGNAL.for_client(redis)
        self._refund = _REFUND.for_client(redis)
        # the serving call on the edge's lean pipelined connection when given one: redis-py
        # spent more CPU per call than the rest of an answer
        self._reads = Commands(redis, pipe)
        self.bought_whole_max = BOUGHT_WHOLE_MAX
        self._heavy_buyers: set[int] = set()  # shoppers whose bought set is not sent whole

    # --- the consumer's writes --------------------------------------------------------------

    async def put_items(self, items: Sequence[Item]) -> None:
        """Products as catalog events tell them."""
        if not items:
            return
        records = [
            {
                b"c": b"%d" % cat,
                b"s": status.encode(),
                b"k": ",".join(skus).encode(),
                b"x": b"%d" % consumable,
            }
            for _, cat, status, skus, consumable in items
        ]
        read = self.redis.pipeline(transaction=False)
        for it in items:
            read.hgetall(b"recs:item:%d" % it.product_id)
        before = await read.execute()
        pipe = self.redis.pipeline(transaction=False)
        for it, rec in zip(items, records, strict=True):
            pipe.hset(b"recs:item:%d" % it.product_id, mapping=rec)  # type: ignore[arg-type]
            for sku in it.skus:
                pipe.set(b"recs:sku:" + sku.encode(), it.product_id)
        # announced after the records, and only those that changed (the serving snapshots
        # re-read what is announced; the service's backfill at each start rewrites all)
        pipe.sadd(ITEMS_KEY, *[it.product_id for it in items])
        for it, rec, old in zip(items, records, before, strict=True):
            if rec != old:
                pipe.xadd(
                    CHANGES_KEY, {b"p": it.product_id}, maxlen=CHANGES_MAXLEN, approximate=True
                )
        await pipe.execute()

    async def products_of_skus(self, skus: Sequence[str]) -> list[int | None]:
        if not skus:
            return []
        raw = await self.redis.mget([b"recs:sku:" + s.encode() for s in skus])
        return [int(r) if r else None for r in raw]

    async def categories(self, pids: Sequence[int]) -> list[int]:
        """Each product's category (0 when catalog.v1 has not told it yet)."""
        if not pids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for pid in pids:
            pipe.hget(b"recs:item:%d" % pid, b"c")
        return [int(c) if c else 0 for c in await pipe.execute()]

    async def apply(self, signals: Sequence[Signal]) -> int:
        """Apply signals (each once, by event id) in one round trip; returns how many were
        new."""
        if not signals:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for s in signals:
            keys: list[bytes] = [
                b"recs:seen:" + s.event_id.encode(),
                recent_key(s.user_id or 0),
                b"recs:rbuy:%d" % (s.user_id or 0),
                bought_key(s.user_id or 0),
                b"recs:order:%d" % (s.order_id or 0),
                LOG_KEY,
            ]
            for pid, cat in zip(s.products, s.categories, strict=True):
                keys += [covis_key(pid), cobuy_key(pid), trend_key(cat)]
            weight = rules.KIND_WEIGHT[rules.KINDS.index(s.kind)]
            args: list[str | int | float] = [
                s.kind, s.at_ms, weight, rules.trend_increment(weight, s.at_ms),
                s.user_id or 0, rules.COVIS_WINDOW_S * 1000, rules.RECENT_ITEMS,
                NEIGHBOURS_MAX, self.log_maxlen, STATE_TTL_S, *s.products,
            ]  # fmt: skip
            await self._signal(keys=keys, args=args, client=pipe)
        return sum(int(x) for x in await pipe.execute())

    async def refund(self, event_id: str, order_id: int) -> bool:
        r = await self._refund(
            keys=[b"recs:seen:" + event_id.encode(), b"recs:order:%d" % order_id],
            args=[SEEN_TTL_S],
        )
        return bool(r)

    # --- reads ----------------------------------------------------------------------------

    async def _top(self, key: bytes, n: int) -> list[tuple[int, float]]:
        raw = cast(
            "list[tuple[bytes, float]]",
            await self.redis.zrange(key, 0, n - 1, desc=True, withscores=True),
        )
        return [(int(p), float(s)) for p, s in raw]

    async def bought_together(self, pid: int, n: int = 10) -> list[tuple[int, float]]:
        return await self._top(cobuy_key(pid), n)

    async def viewed_together(self, pid: int, n: int = 10) -> list[tuple[int, float]]:
        return await self._top(covis_key(pid), n)

    async def trending(self, category: int, n: int = 10) -> list[tuple[int, float]]:
        return await self._top(trend_key(category), n)

    async def recent(self, user: int) -> list[int]:
        raw = cast("list[bytes]", await self.redis.zrange(recent_key(user), 0, -1, desc=True))
        return [int(p) for p in raw]

    async def serve(
        self, user: int, context: Sequence[int], candidates: Sequence[int], n_recent: int = 5,
        n_neighbours: int = 20, n_trend: int = 0,
    ) -> Live:  # fmt: skip
        """Mostly one round trip: the shopper's recent items, the live neighbours of the seeds
        (the ``context`` products, then the recent items), ``n_trend`` trending items of
        each seed's category, and which neighbours and ``candidates`` the shopper bought.

        A bought set of at most ``bought_whole_max`` items comes back whole, so the candidates
        are not sent: packing ~50 ids per call was ~7% of a ``/me`` answer's CPU. A larger
        set is checked against the candidates in a second call, and the shopper is
        remembered so that the next call sends them at once."""
        heavy = user in self._heavy_buyers
        live, whole = await self._serve(
            user, context, candidates if heavy else (), n_recent, n_neighbours, n_trend
        )
        if not whole and not heavy and candidates:
            if len(self._heavy_buyers) >= HEAVY_BUYERS_MAX:
                self._heavy_buyers.clear()
            self._heavy_buyers.add(user)
            live, _ = await self._serve(user, context, candidates, n_recent, n_neighbours, n_trend)
        return live

    async def _serve(
        self, user: int, context: Sequence[int], candidates: Sequence[int], n_recent: int,
        n_neighbours: int, n_trend: int,
    ) -> tuple[Live, bool]:  # fmt: skip
        recent, covis, cobuy, trend, bought, whole = cast(
            "list[Any]",
            await self._reads.script(
                _SERVE,
                [recent_key(user), bought_key(user)],
                [
                    n_recent, n_neighbours, len(context), n_trend, self.bought_whole_max,
                    *context, *candidates,
                ],
            ),
        )  # fmt: skip
        live = Live(
            [int(r) for r in recent],
            [[int(p) for p in ps] for ps in covis],
            [[int(p) for p in ps] for ps in cobuy],
            [[int(p) for p in ps] for ps in trend],
            {int(p) for p in bought},
        )
        return live, whole == 1

    async def availability(
        self, cursors: Cursors, sweep: str, sweep_count: int, max_changes: int
    ) -> Checked:
        """The products changed since ``cursors`` (catalog writes, product records, new
        checkout sell-outs) and ``sweep_count`` more of every product (SSCAN from
        ``sweep``), each checked: active and available (recs_avail.lua)."""
        cat, rec, out, nxt, more, gap, flat = cast(
            "list[Any]",
            await self._reads.script(_AVAIL, [], [*cursors, sweep, sweep_count, max_changes]),
        )
        return Checked(
            Cursors(cat.decode(), rec.decode(), out.decode()),
            nxt.decode(),
            bool(more),
            bool(gap),
            [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)],
        )

    async def bought(self, user: int) -> set[int]:
        return {int(p) for p in await self.redis.smembers(bought_key(user))}


class Signal:
    """One shopper signal of one event (an order: all its products)."""

    __slots__ = ("at_ms", "categories", "event_id", "kind", "order_id", "products", "user_id")

    def __init__(
        self, event_id: str, kind: rules.Kind, at_ms: int, user_id: int | None,
        products: Sequence[int], categories: Sequence[int], order_id: int | None = None,
    ) -> None:  # fmt: skip
        self.event_id = event_id
        self.kind = kind
        self.at_ms = at_ms
        self.user_id = user_id
        self.products = list(products)
        self.categories = list(categories)
        self.order_id = order_id


# --- A/B tests: the one running experiment, its exposures and outcomes ------------------------
#
# Keys: ``recs:exp`` (JSON: key, arms [{name, model_version, weight}], window_s, started_ms);
# per experiment key K: ``recs:exp:K:user`` hash user -> "<arm>:<first exposure ms>",
# ``recs:exp:K:shown:<user>`` set of the products last shown (a later view of one is a
# click; expires with the window), ``recs:exp:K:stats`` hash "<arm>:<counter>" (impressions,
# clicks, carts, orders, revenue), ``recs:exp:K:rev`` hash user -> revenue in the window.

EXP_KEY: Final = b"recs:exp"


class ExperimentStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def define(self, config: bytes) -> None:
        await self.redis.set(EXP_KEY, config)

    async def current(self) -> bytes | None:
        return cast("bytes | None", await self.redis.get(EXP_KEY))

    async def expose(
        self, key: str, user: int, arm: str, shown: Sequence[int], at_ms: int, window_s: int
    ) -> None:
        k = f"recs:exp:{key}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hsetnx(f"{k}:user", user, f"{arm}:{at_ms}")
        pipe.hincrby(f"{k}:stats", f"{arm}:impressions", len(shown))
        if shown:
            pipe.delete(f"{k}:shown:{user}")
            pipe.sadd(f"{k}:shown:{user}", *shown)
            pipe.expire(f"{k}:shown:{user}", window_s)
        await pipe.execute()

    async def outcome(
        self, key: str, user: int, kind: str, products: Sequence[int], revenue: float,
        at_ms: int, window_s: int,
    ) -> None:  # fmt: skip
        """A view (a click when the product was shown), add-to-cart or order of a user,
        counted for their arm when it came within the window after their first exposure."""
        k = f"recs:exp:{key}"
        raw = cast("bytes | None", await self.redis.hget(f"{k}:user", user))
        if raw is None:
            return
        arm, _, since = raw.decode().rpartition(":")
        if not 0 <= at_ms - int(since) <= window_s * 1000:
            return
        pipe = self.redis.pipeline(transaction=False)
        if kind == "view":
            for pid in products:
                pipe.sismember(f"{k}:shown:{user}", str(pid))
            hits = sum(int(x) for x in await pipe.execute())
            if hits:
                await self.redis.hincrby(f"{k}:stats", f"{arm}:clicks", hits)
            return
        pipe.hincrby(f"{k}:stats", f"{arm}:{kind}s", 1)
        if revenue:
            pipe.hincrbyfloat(f"{k}:stats", f"{arm}:revenue", revenue)
            pipe.hincrbyfloat(f"{k}:rev", user, revenue)
        await pipe.execute()

    async def results(self, key: str) -> tuple[dict[str, str], dict[str, float], dict[str, float]]:
        """(user -> arm, "<arm>:<counter>" -> value, user -> revenue)."""
        k = f"recs:exp:{key}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(f"{k}:user")
        pipe.hgetall(f"{k}:stats")
        pipe.hgetall(f"{k}:rev")
        users, stats, rev = cast("list[dict[bytes, bytes]]", await pipe.execute())
        return (
            {u.decode(): v.decode().rpartition(":")[0] for u, v in users.items()},
            {s.decode(): float(v) for s, v in stats.items()},
            {u.decode(): float(v) for u, v in rev.items()},
        )
