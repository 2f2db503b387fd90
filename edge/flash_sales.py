"""Flash-sale routes: admin CRUD, the purchase hot path, sale state, and the buyer's orders.

The purchase path, per request: token check (cached), one Rust gate decision, and — only if
admitted — one EVALSHA that is pipelined with every other purchase of the same loop tick.
After a sale sells out, the gate answers rejections in-process; only the sale's actual buyers
(who may be retrying with their Idempotency-Key) still reach Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Iterator
from typing import Annotated, Final

import asyncpg
import msgspec
from redis.exceptions import RedisError

from edge.deps import Deps
from nexuscart import _core
from nexuscart.adapters import sales_repo
from nexuscart.adapters.flash_sales import FlashSaleStore, StockConflict
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.adapters.sales_repo import OrderView
from nexuscart.auth import AuthError, TokenVerifier, admin_ok
from nexuscart.domain.flash_sale import (
    MAX_QUANTITY,
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
from nexuscart.web import (
    ID_MAX,
    DependencyUnavailable,
    HTTPError,
    Request,
    Response,
    Route,
    decode_body,
    json_response,
    path_int,
    query_int,
)

log = logging.getLogger("nexuscart.edge.flash_sales")

Quantity = Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)]


class PurchaseRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    quantity: Quantity


class PurchaseAccepted(msgspec.Struct, frozen=True):
    hold_id: int  # one hold per order: the hold is keyed by the order id
    order_id: int
    expires_at: dt.datetime


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


class OrderPage(msgspec.Struct, frozen=True):
    items: list[OrderView]
    next_cursor: str | None


IDEM_MAX: Final = 200
VIEW_CACHE_S: Final = 0.1
_EMPTY: Final[frozenset[int]] = frozenset()
_json_headers: Final = [("content-type", "application/json")]


@contextlib.contextmanager
def pg_errors() -> Iterator[None]:
    """PostgreSQL unreachable, failing over or too slow: the caller gets a 503."""
    try:
        yield
    except (
        OSError,
        TimeoutError,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
    ) as exc:
        raise DependencyUnavailable("postgres") from exc


def _idem_key(req: Request) -> str:
    key = req.header("idempotency-key")
    if not key:
        raise HTTPError(400, "idempotency-key-required", "Idempotency-Key header required")
    if len(key) > IDEM_MAX or not key.isprintable() or " " in key:
        raise HTTPError(
            400,
            "idempotency-key-invalid",
            "Idempotency-Key is invalid",
            f"1 to {IDEM_MAX} printable characters without spaces",
        )
    return key


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


def routes(deps: Deps) -> list[Route]:
    s = deps.settings
    verifier = TokenVerifier(s.auth.jwt_secret, s.auth.jwt_issuer)
    gate = _core.Gate(
        s.gate.user_rate, s.gate.user_burst, s.gate.ip_rate, s.gate.ip_burst, s.gate.max_in_flight
    )
    store = FlashSaleStore(deps.redis, RedisPipe(s.redis.url, s.edge.dependency_timeout_s))
    watch = SoldOutWatch(gate, store, s.gate.sold_out_refresh_ms / 1000)
    deps.background.append(watch.run)
    deps.closers.append(store.close)
    admit = gate.admit
    admit_ok, sold_out, rate_limited = _core.ADMIT, _core.SOLD_OUT, _core.RATE_LIMITED
    encode = msgspec.json.encode
    event_id = EventIds()
    iso_at, iso = 0.0, ""
    ok, replay = int(Outcome.OK), int(Outcome.REPLAY)

    def buyer(req: Request) -> int:
        try:
            return verifier.user_id(req.header("authorization"))
        except AuthError as exc:
            raise HTTPError(
                401,
                "unauthorized",
                "Valid buyer token required",
                str(exc),
                headers=[("www-authenticate", "Bearer")],
            ) from None

    def require_admin(req: Request) -> None:
        if not admin_ok(req.header("authorization"), s.auth.admin_token):
            raise HTTPError(
                401,
                "unauthorized",
                "Admin credential required",
                headers=[("www-authenticate", "Bearer")],
            )

    def now_iso() -> str:
        # one ISO timestamp per millisecond, however many purchases share it
        nonlocal iso_at, iso
        now = time.time()
        if now - iso_at >= 0.001:
            iso_at, iso = now, dt.datetime.fromtimestamp(now, dt.UTC).isoformat()
        return iso

    async def purchase(req: Request) -> Response:
        user_id = buyer(req)
        sale_id = path_int(req, "sale_id")
        key = _idem_key(req)
        # The gate answers before the body is read: a rejection in a storm costs no body
        # read and no Redis call. Bad bodies still get 400/422 whenever the gate admits.
        code, retry_ms = admit(sale_id, user_id, req.client_ip)
        acquired = code == admit_ok
        if not acquired:
            if code == sold_out:
                if user_id not in watch.buyers.get(sale_id, _EMPTY):
                    raise HTTPError(409, "sold-out", "Sold out")
                # a buyer of this sale may be retrying: let Redis answer (replay or limit)
            elif code == rate_limited:
                raise HTTPError(
                    429,
                    "rate-limited",
                    "Too many requests",
                    headers=[("retry-after", str(max(1, math.ceil(retry_ms / 1000))))],
                )
            else:
                raise HTTPError(
                    503, "busy", "Too many purchases in flight", headers=[("retry-after", "1")]
                )
        try:
            await req.read_body()
            qty = decode_body(req, PurchaseRequest).quantity
            res = await store.purchase(sale_id, user_id, qty, key, event_id(), now_iso())
        except (RedisError, OSError) as exc:
            raise DependencyUnavailable("redis") from exc
        finally:
            if acquired:
                gate.release(sale_id)
        outcome = res.code
        if outcome in (ok, replay):
            if res.available_after == 0:
                watch.sold_out_seen(sale_id)
            body = encode(
                PurchaseAccepted(
                    hold_id=res.order_id,
                    order_id=res.order_id,
                    expires_at=dt.datetime.fromtimestamp(res.expires_at_ms / 1000, dt.UTC),
                )
            )
            headers = (
                _json_headers
                if outcome == ok
                else [*_json_headers, ("idempotent-replayed", "true")]
            )
            return Response(202, body, headers)
        if outcome == Outcome.SOLD_OUT:
            watch.sold_out_seen(sale_id)
        status, slug, title = REJECTIONS[Outcome(outcome)]
        raise HTTPError(status, slug, title)

    async def sale_view(sale_id: int) -> SaleView:
        try:
            snap = await store.snapshot(sale_id)
        except (RedisError, OSError) as exc:
            raise DependencyUnavailable("redis") from exc
        if snap is None:
            raise HTTPError(404, "not-found", "No such flash sale")
        sale, a, h, so = snap.sale, snap.available, snap.held, snap.sold
        return SaleView(
            sale_id=sale.sale_id,
            sku=sale.sku,
            state=state_at(sale, int(time.time() * 1000), a),
            units=sale.units,
            available=a,
            held=h,
            sold=so,
            price_cents=sale.price_cents,
            currency=sale.currency,
            per_user_limit=sale.per_user_limit,
            starts_at_ms=sale.starts_at_ms,
            ends_at_ms=sale.ends_at_ms,
            hold_ttl_s=sale.hold_ttl_s,
        )

    # A product page in a storm is read far more often than it changes: each worker serves
    # a sale's view from memory for VIEW_CACHE_S, so Redis sees a few reads a second per sale.
    views: dict[int, tuple[float, bytes]] = {}

    async def get_sale(req: Request) -> Response:
        sale_id = path_int(req, "sale_id")
        now = time.monotonic()
        hit = views.get(sale_id)
        if hit is None or hit[0] < now:
            if len(views) > 10_000:
                views.clear()
            hit = views[sale_id] = (now + VIEW_CACHE_S, encode(await sale_view(sale_id)))
        return Response(200, hit[1], _json_headers)

    async def pg() -> asyncpg.Pool:
        with pg_errors():
            return await deps.pg_pool()

    async def create_sale(req: Request) -> Response:
        require_admin(req)
        key = _idem_key(req)
        spec = decode_body(req, SaleSpec)
        problem = validate_window(spec.starts_at_ms, spec.ends_at_ms)
        if problem:
            raise HTTPError(422, "validation-error", "Request body failed validation", problem)
        ttl = spec.hold_ttl_s or s.sale.hold_ttl_s
        pool = await pg()
        try:
            with pg_errors():
                sale, existed = await sales_repo.create_sale(pool, key, spec, ttl)
        except sales_repo.IdempotencyKeyReused as exc:
            raise HTTPError(
                422, "idempotency-key-reused", "Idempotency-Key was used with a different request"
            ) from exc
        await _to_redis(sale)
        view = await sale_view(sale.sale_id)
        return json_response(
            view,
            status=200 if existed else 201,
            headers=[("location", f"/flash-sales/{sale.sale_id}")],
        )

    async def _to_redis(sale: Sale) -> None:
        try:
            await store.upsert(sale)
        except StockConflict as exc:
            raise HTTPError(
                409, "stock-conflict", "Units below what is held or sold", str(exc)
            ) from exc
        except (RedisError, OSError) as exc:
            raise DependencyUnavailable("redis") from exc
        gate.reopen(sale.sale_id)

    async def locked_sale(conn: asyncpg.Connection, sale_id: int) -> Sale:
        sale = await sales_repo.lock_sale(conn, sale_id)
        if sale is None:
            raise HTTPError(404, "not-found", "No such flash sale")
        return sale

    async def update_sale(req: Request) -> Response:
        require_admin(req)
        _idem_key(req)  # PATCH sets values: repeating it leaves the same state
        sale_id = path_int(req, "sale_id")
        upd = decode_body(req, SaleUpdate)
        pool = await pg()
        with pg_errors():
            async with pool.acquire() as conn, conn.transaction():
                new = apply_update(await locked_sale(conn, sale_id), upd)
                problem = validate_window(new.starts_at_ms, new.ends_at_ms)
                if problem:
                    raise HTTPError(
                        422, "validation-error", "Request body failed validation", problem
                    )
                # Redis first, inside the PG transaction: if Redis refuses (units below
                # held + sold) or is down, the durable row is not changed either.
                await _to_redis(new)
                await sales_repo.save_sale(conn, new)
        return json_response(await sale_view(sale_id))

    async def end_sale(req: Request) -> Response:
        require_admin(req)
        _idem_key(req)  # ending twice is the same as ending once
        sale_id = path_int(req, "sale_id")
        pool = await pg()
        with pg_errors():
            async with pool.acquire() as conn, conn.transaction():
                sale = msgspec.structs.replace(await locked_sale(conn, sale_id), ended=True)
                await _to_redis(sale)
                await sales_repo.save_sale(conn, sale)
        return json_response(await sale_view(sale_id))

    async def get_order(req: Request) -> Response:
        user_id = buyer(req)
        order_id = path_int(req, "order_id")
        pool = await pg()
        with pg_errors():
            orders = await sales_repo.orders_of_user(pool, user_id, order_id=order_id)
        if not orders:
            raise HTTPError(404, "not-found", "No such order")
        return json_response(orders[0])

    async def my_orders(req: Request) -> Response:
        user_id = buyer(req)
        limit = query_int(req, "limit", 20, 1, 100)
        cursor = query_int(req, "cursor", None, 0, ID_MAX)
        pool = await pg()
        with pg_errors():
            orders = await sales_repo.orders_of_user(pool, user_id, before=cursor, limit=limit + 1)
        nxt = str(orders[limit - 1].order_id) if len(orders) > limit else None
        return json_response(OrderPage(items=orders[:limit], next_cursor=nxt))

    buyer_auth, admin_auth = "buyer", "admin"
    return [
        Route(
            "POST",
            "/admin/flash-sales",
            create_sale,
            "Create a flash sale",
            request=SaleSpec,
            responses={201: SaleView, 200: SaleView},
            auth=admin_auth,
            idempotent_key=True,
            problems=(409,),
            tags=("admin",),
        ),
        Route(
            "PATCH",
            "/admin/flash-sales/{sale_id}",
            update_sale,
            "Update a flash sale (restock, window, limit, price)",
            request=SaleUpdate,
            responses={200: SaleView},
            auth=admin_auth,
            idempotent_key=True,
            problems=(409,),
            tags=("admin",),
            params=("sale_id",),
        ),
        Route(
            "POST",
            "/admin/flash-sales/{sale_id}/end",
            end_sale,
            "End a flash sale now",
            responses={200: SaleView},
            auth=admin_auth,
            idempotent_key=True,
            problems=(409,),
            tags=("admin",),
            params=("sale_id",),
        ),
        Route(
            "GET",
            "/flash-sales/{sale_id}",
            get_sale,
            "A flash sale's state and units left",
            responses={200: SaleView},
            tags=("flash-sales",),
            params=("sale_id",),
        ),
        Route(
            "POST",
            "/flash-sales/{sale_id}/purchase",
            purchase,
            "Buy units: an expiring hold and a pending order",
            request=PurchaseRequest,
            responses={202: PurchaseAccepted},
            auth=buyer_auth,
            idempotent_key=True,
            defer_body=True,
            problems=(409, 429),
            tags=("flash-sales",),
            params=("sale_id",),
        ),
        Route(
            "GET",
            "/orders/{order_id}",
            get_order,
            "One of the buyer's orders",
            responses={200: OrderView},
            auth=buyer_auth,
            tags=("orders",),
            params=("order_id",),
        ),
        Route(
            "GET",
            "/users/me/orders",
            my_orders,
            "The buyer's orders, by order id descending",
            responses={200: OrderPage},
            auth=buyer_auth,
            tags=("orders",),
            query=(
                (
                    "limit",
                    "page size, 1-100 (default 20)",
                    {"type": "integer", "minimum": 1, "maximum": 100},
                ),
                (
                    "cursor",
                    "next_cursor of the previous page",
                    {"type": "integer", "minimum": 0, "maximum": ID_MAX},
                ),
            ),
        ),
    ]
