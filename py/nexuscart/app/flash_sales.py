"""Flash-sale use cases: what the edge handlers ask for, testable without HTTP.

A purchase is two calls, so that the handler can read the body in between:
``admit`` (before the body: buckets and the sold-out flag, in process) and ``buy`` (after
it: the in-flight slot, held only around the one batched Redis call). Admin changes write
PostgreSQL, the durable record, and Redis, the state purchases run on; ``SoldOutWatch``
keeps this worker's sold-out flags in step with Redis.

Refusals are ``Refused`` (a stable problem slug, a title and the HTTP status the domain
gives them); a dependency that fails is ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg
import msgspec
from redis.exceptions import RedisError

from nexuscart import _core, observability
from nexuscart.adapters import sales_repo
from nexuscart.adapters.flash_sales import FlashSaleStore, PurchaseReply, StockConflict
from nexuscart.app.errors import Refused, Unavailable, pg_errors, redis_errors
from nexuscart.domain.flash_sale import (
    REJECTIONS,
    Outcome,
    Sale,
    SaleSpec,
    SaleState,
    SaleUpdate,
    apply_update,
    state_at,
    validate_window,
)
from nexuscart.events import EventIds

_EMPTY: Final[frozenset[int]] = frozenset()
_OK: Final = int(Outcome.OK)
_REPLAY: Final = int(Outcome.REPLAY)
_SOLD_OUT: Final = int(Outcome.SOLD_OUT)
# the edge's counter keys (nexuscart.web.Metrics.counters) of each Rust gate decision
_GATE = "flash_sale_gate_decisions_total"
GATE_KEYS: Final = {
    _core.ADMIT: (_GATE, 'decision="admit"'),
    _core.SOLD_OUT: (_GATE, 'decision="sold_out"'),
    _core.RATE_LIMITED: (_GATE, 'decision="rate_limited"'),
    _core.BUSY: (_GATE, 'decision="busy"'),
}


NOT_FOUND: Final = (404, "not-found", "No such flash sale")
SOLD_OUT: Final = REJECTIONS[Outcome.SOLD_OUT]
# admit() returns this one object for every sold-out refusal: in a storm that is nearly every
# request, and a returned (not raised) refusal costs no traceback and no allocation
SOLD_OUT_REFUSAL: Final = Refused(*SOLD_OUT)


class SaleView(msgspec.Struct, frozen=True):
    sale_id: int
    sku: str
    state: SaleState
    units: int
    available: int
    held: int
    sold: int
    price_cents: int
    currency: str
    per_user_limit: int
    starts_at_ms: int
    ends_at_ms: int
    hold_ttl_s: int


class SoldOutWatch:
    """Keeps this worker's sold-out flags and buyer sets in step with Redis.

    A sale is flagged sold out only after its buyer set is loaded, so a buyer's retry is
    never refused by the flag. Every ``interval`` the flagged sales are re-read in one
    round trip; stock that came back (expiry, cancel, restock) re-opens the sale, and new
    purchases elsewhere (seq moved) reload the buyers. Bound on re-open delay: interval.
    """

    def __init__(self, gate: _core.Gate, store: FlashSaleStore, interval_s: float):
        self.gate = gate
        self.store = store
        self.interval_s = interval_s
        self.buyers: dict[int, frozenset[int]] = {}
        self.seq: dict[int, int] = {}
        self._loading: set[int] = set()

    def is_buyer(self, sale_id: int, user_id: int) -> bool:
        """A buyer of a flagged sale may be retrying: only Redis can answer (replay, limit)."""
        return user_id in self.buyers.get(sale_id, _EMPTY)

    def sold_out_seen(self, sale_id: int) -> None:
        if sale_id in self._loading or self.gate.is_sold_out(sale_id):
            return
        self._loading.add(sale_id)
        task = asyncio.ensure_future(self._flag(sale_id))
        task.add_done_callback(lambda _: self._loading.discard(sale_id))

    async def _flag(self, sale_id: int) -> None:
        # The epoch makes a "sold out" read before a reopen() lose against that reopen.
        epoch = self.gate.epoch(sale_id)
        with contextlib.suppress(RedisError, OSError):
            before = (await self.store.stock_states([sale_id]))[0]
            buyers = await self.store.buyers(sale_id)
            now = (await self.store.stock_states([sale_id]))[0]
            if before is not None and now is not None and now.available <= 0:
                self.buyers[sale_id] = frozenset(buyers)
                self.seq[sale_id] = before.seq
                self.gate.mark_sold_out(sale_id, epoch)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            # Redis down: keep the flags; purchases answer 503 anyway
            with contextlib.suppress(RedisError, OSError):
                await self.refresh()

    async def refresh(self) -> None:
        ids = self.gate.sold_out_sales()
        if not ids:
            return
        states = await self.store.stock_states(ids)
        for sid, st in zip(ids, states, strict=True):
            if st is None or st.available > 0:
                self.gate.reopen(sid)
                self.buyers.pop(sid, None)
            elif st.seq != self.seq.get(sid):
                self.seq[sid] = st.seq
                self.buyers[sid] = frozenset(await self.store.buyers(sid))


class FlashSales:
    """The flash-sale use cases of one edge worker."""

    def __init__(
        self,
        store: FlashSaleStore,
        gate: _core.Gate,
        pg: Callable[[], Awaitable[asyncpg.Pool]],
        *,
        default_hold_ttl_s: int,
        sold_out_refresh_s: float,
        counters: dict[tuple[str, str], int] | None = None,
    ):
        """``counters``: where the gate's decisions are counted (the edge's Metrics)."""
        self.counters = {} if counters is None else counters
        self.store = store
        self.gate = gate
        self.pg = pg
        self.default_hold_ttl_s = default_hold_ttl_s
        self.watch = SoldOutWatch(gate, store, sold_out_refresh_s)
        self.event_id = EventIds()
        self._iso_at = 0.0
        self._iso = ""

    # -- purchase: the hot path ------------------------------------------------------------

    def admit(self, sale_id: int, user_id: int, client_ip: str) -> Refused | None:
        """Before the body is read: the user's and the IP's buckets, then the sold-out
        flag. None goes on to ``buy``; a refusal here costs no body read and no Redis call,
        and is returned rather than raised (the storm's common case)."""
        code, retry_ms = self.gate.check(sale_id, user_id, client_ip)
        key = GATE_KEYS[code]
        self.counters[key] = self.counters.get(key, 0) + 1
        if code == _core.ADMIT:
            return None
        if code == _core.SOLD_OUT:
            if self.watch.is_buyer(sale_id, user_id):
                return None
            return SOLD_OUT_REFUSAL
        return Refused(
            429,
            "rate-limited",
            "Too many requests",
            retry_after_s=max(1, math.ceil(retry_ms / 1000)),
        )

    async def buy(self, sale_id: int, user_id: int, quantity: int, key: str) -> PurchaseReply:
        """After the body: one purchase in Redis (OK or REPLAY), holding one of the sale's
        in-flight slots only around the call."""
        code = self.gate.enter(sale_id)
        if code != _core.ADMIT:  # admissions were counted by admit()
            counted = GATE_KEYS[code]
            self.counters[counted] = self.counters.get(counted, 0) + 1
        # a sold-out flag set since admit() still lets the sale's own buyers through
        entered = code == _core.ADMIT
        if not entered:
            if code == _core.SOLD_OUT and not self.watch.is_buyer(sale_id, user_id):
                raise Refused(*SOLD_OUT)
            if code == _core.BUSY:
                raise Refused(503, "busy", "Too many purchases in flight", retry_after_s=1)
        # head sampling by hand: one random() per purchase; the SDK only for the traced ones
        tracing = observability.TRACING
        span = None
        if tracing.rate and random.random() < tracing.rate:
            span = tracing.start("flash_sale.purchase", sale_id=sale_id, quantity=quantity)
        try:
            with redis_errors():
                res = await self.store.purchase(
                    sale_id,
                    user_id,
                    quantity,
                    key,
                    self.event_id(),
                    self._now_iso(),
                    observability.traceparent(span),
                )
        finally:
            if entered:
                self.gate.release(sale_id)
            if span is not None:
                span.end()
        if res.code == _OK or res.code == _REPLAY:
            if res.available_after == 0:
                self.watch.sold_out_seen(sale_id)
            return res
        if res.code == _SOLD_OUT:
            self.watch.sold_out_seen(sale_id)
        raise Refused(*REJECTIONS[Outcome(res.code)])

    def _now_iso(self) -> str:
        # one ISO timestamp per millisecond, however many purchases share it
        now = time.time()
        if now - self._iso_at >= 0.001:
            self._iso_at, self._iso = now, dt.datetime.fromtimestamp(now, dt.UTC).isoformat()
        return self._iso

    # -- reads -----------------------------------------------------------------------------

    async def view(self, sale_id: int) -> SaleView:
        with redis_errors():
            snap = await self.store.snapshot(sale_id)
        if snap is None:
            raise Refused(*NOT_FOUND)
        sale, a = snap.sale, snap.available
        return SaleView(
            sale_id=sale.sale_id,
            sku=sale.sku,
            state=state_at(sale, int(time.time() * 1000), a),
            units=sale.units,
            available=a,
            held=snap.held,
            sold=snap.sold,
            price_cents=sale.price_cents,
            currency=sale.currency,
            per_user_limit=sale.per_user_limit,
            starts_at_ms=sale.starts_at_ms,
            ends_at_ms=sale.ends_at_ms,
            hold_ttl_s=sale.hold_ttl_s,
        )

    # -- admin -----------------------------------------------------------------------------

    async def create(self, key: str, spec: SaleSpec) -> tuple[SaleView, bool]:
        """(view, existed): a retry with the same key and request answers the same sale."""
        _check_window(spec.starts_at_ms, spec.ends_at_ms)
        ttl = spec.hold_ttl_s or self.default_hold_ttl_s
        pool = await self._pool()
        try:
            with pg_errors():
                sale, existed = await sales_repo.create_sale(pool, key, spec, ttl)
        except sales_repo.IdempotencyKeyReused as exc:
            raise Refused(*REJECTIONS[Outcome.KEY_REUSED]) from exc
        # The row is durable first; a Redis failure here answers 503 and the retry (same
        # key) finds the row and writes Redis again.
        await self._to_redis(sale)
        return await self.view(sale.sale_id), existed

    async def update(self, sale_id: int, upd: SaleUpdate) -> SaleView:
        return await self._change(sale_id, lambda sale: apply_update(sale, upd))

    async def end(self, sale_id: int) -> SaleView:
        return await self._change(sale_id, lambda sale: msgspec.structs.replace(sale, ended=True))

    async def _change(self, sale_id: int, change: Callable[[Sale], Sale]) -> SaleView:
        """Row locked, Redis written inside the transaction (a refusal there — units below
        held + sold — or Redis down rolls the row back), then commit. Should the commit fail
        after Redis took the change, Redis is put back to the committed row."""
        pool = await self._pool()
        old: Sale | None = None
        written = False
        try:
            with pg_errors():
                async with pool.acquire() as conn, conn.transaction():
                    old = await sales_repo.lock_sale(conn, sale_id)
                    if old is None:
                        raise Refused(*NOT_FOUND)
                    new = change(old)
                    _check_window(new.starts_at_ms, new.ends_at_ms)
                    await sales_repo.save_sale(conn, new)
                    await self._to_redis(new)
                    written = True
        except (Unavailable, asyncpg.PostgresError) as exc:
            if written and old is not None:
                with contextlib.suppress(Refused, Unavailable):
                    await self._to_redis(old)
            if isinstance(exc, Unavailable):
                raise
            raise Unavailable("postgres") from exc  # e.g. the commit failed
        return await self.view(sale_id)

    async def _to_redis(self, sale: Sale) -> None:
        try:
            with redis_errors():
                await self.store.upsert(sale)
        except StockConflict as exc:
            raise Refused(
                409, "stock-conflict", "Units below what is held or sold", str(exc)
            ) from exc
        self.gate.reopen(sale.sale_id)

    async def _pool(self) -> asyncpg.Pool:
        with pg_errors():
            return await self.pg()


def _check_window(starts_at_ms: int, ends_at_ms: int) -> None:
    problem = validate_window(starts_at_ms, ends_at_ms)
    if problem:
        raise Refused(422, "validation-error", "Request body failed validation", problem)
