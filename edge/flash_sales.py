"""Flash-sale routes: thin HTTP handlers over the use cases in ``nexuscart.app.flash_sales``.

The purchase path, per request: the customer guard (token check, cached) runs before the body;
the handler asks the use case to ``admit`` (one Rust gate decision, in process), reads and
decodes the body, then ``buy`` (one EVALSHA pipelined with every other purchase of the same
loop tick). After a sale sells out, rejections are answered in process; only the sale's
actual buyers (who may be retrying with their Idempotency-Key) still reach Redis.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Final

import msgspec

from edge.access import user_of
from edge.deps import Deps
from edge.http import handles_refusals, idem_key, refused
from nexuscart.app.errors import Refused, Unavailable
from nexuscart.app.flash_sales import SaleView
from nexuscart.domain.flash_sale import MAX_QUANTITY, Outcome, SaleSpec, SaleUpdate
from nexuscart.web import (
    DependencyUnavailable,
    Request,
    Response,
    Route,
    decode_body,
    json_response,
    path_int,
)

Quantity = Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)]


class PurchaseRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    quantity: Quantity


class PurchaseAccepted(msgspec.Struct, frozen=True):
    hold_id: int  # one hold per order: the hold is keyed by the order id
    order_id: int
    expires_at: dt.datetime


VIEW_CACHE_S: Final = 0.1
_json_headers: Final = [("content-type", "application/json")]
_replayed_headers: Final = [*_json_headers, ("idempotent-replayed", "true")]
_REPLAY: Final = int(Outcome.REPLAY)


class ViewCache:
    """Encoded sale views, per worker, for ``ttl_s``. A product page in a storm is read far
    more often than it changes, so Redis sees a few reads a second per sale. One refresh
    per sale is in flight at a time, and while it runs the previous view is served (stale
    by at most ``ttl_s`` plus one Redis round trip): without that, every request arriving
    at an expiry went to Redis at once."""

    def __init__(
        self, load: Callable[[int], Awaitable[bytes]], ttl_s: float, max_entries: int = 10_000
    ):
        self.load = load
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._views: dict[int, tuple[float, bytes]] = {}  # sale id -> (fresh until, body)
        self._loading: dict[int, asyncio.Future[bytes]] = {}

    async def get(self, sale_id: int) -> bytes:
        hit = self._views.get(sale_id)
        if hit is not None and hit[0] >= time.monotonic():
            return hit[1]
        fut = self._loading.get(sale_id)
        if fut is None:
            fut = self._loading[sale_id] = asyncio.ensure_future(self._refresh(sale_id))
            fut.add_done_callback(_retrieve)
        if hit is not None:
            return hit[1]
        return await asyncio.shield(fut)

    async def _refresh(self, sale_id: int) -> bytes:
        try:
            body = await self.load(sale_id)
            if len(self._views) >= self.max_entries:
                self._views.clear()
            self._views[sale_id] = (time.monotonic() + self.ttl_s, body)
            return body
        finally:
            del self._loading[sale_id]


def _retrieve(fut: asyncio.Future[bytes]) -> None:
    # a refresh whose callers all got the stale view: its failure is not an error to log
    if not fut.cancelled():
        fut.exception()


def routes(deps: Deps) -> list[Route]:
    sales = deps.flash_sales
    encode = msgspec.json.encode

    async def purchase(req: Request) -> Response:
        # the hot path maps refusals itself (no handles_refusals frame per request)
        user_id = user_of(req)
        sale_id = path_int(req, "sale_id")
        key = idem_key(req)
        # Admission before the body: a rejection in a storm costs no body read and no
        # Redis call. Bad bodies still get 400/422 whenever admission passes.
        refusal = sales.admit(sale_id, user_id, req.client_ip)
        if refusal is not None:
            return refused(refusal, req.path)
        await req.read_body()
        qty = decode_body(req, PurchaseRequest).quantity
        try:
            res = await sales.buy(sale_id, user_id, qty, key)
        except Refused as r:
            return refused(r, req.path)
        except Unavailable as exc:
            raise DependencyUnavailable(exc.dependency) from exc
        body = encode(
            PurchaseAccepted(
                hold_id=res.order_id,
                order_id=res.order_id,
                expires_at=dt.datetime.fromtimestamp(res.expires_at_ms / 1000, dt.UTC),
            )
        )
        return Response(202, body, _replayed_headers if res.code == _REPLAY else _json_headers)

    async def load_view(sale_id: int) -> bytes:
        return encode(await sales.view(sale_id))

    views = ViewCache(load_view, VIEW_CACHE_S)

    @handles_refusals
    async def get_sale(req: Request) -> Response:
        return Response(200, await views.get(path_int(req, "sale_id")), _json_headers)

    @handles_refusals
    async def create_sale(req: Request) -> Response:
        key = idem_key(req)
        view, existed = await sales.create(key, decode_body(req, SaleSpec))
        return json_response(
            view,
            status=200 if existed else 201,
            headers=[("location", f"/flash-sales/{view.sale_id}")],
        )

    @handles_refusals
    async def update_sale(req: Request) -> Response:
        idem_key(req)  # PATCH sets values: repeating it leaves the same state
        sale_id = path_int(req, "sale_id")
        return json_response(await sales.update(sale_id, decode_body(req, SaleUpdate)))

    @handles_refusals
    async def end_sale(req: Request) -> Response:
        idem_key(req)  # ending twice is the same as ending once
        return json_response(await sales.end(path_int(req, "sale_id")))

    # who may call each route: edge/access.py (Route.auth is filled from its table)
    return [
        Route(
            "POST",
            "/admin/flash-sales",
            create_sale,
            "Create a flash sale",
            request=SaleSpec,
            responses={201: SaleView, 200: SaleView},
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
            idempotent_key=True,
            defer_body=True,
            problems=(409, 429),
            tags=("flash-sales",),
            params=("sale_id",),
        ),
    ]
