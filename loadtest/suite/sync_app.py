"""PT-02's synchronous purchase: the order written to PostgreSQL inside the request.

A bench-only RSGI app, run under Granian by the suite next to the real edge and never part
of it: the shipped route table (edge/app.py, edge/access.py) has no synchronous purchase,
because a flash sale's single stock row is exactly the contended write the Redis gate and
the outbox exist to avoid. This app keeps that path only to measure what they save.

``POST /flash-sales/{sale_id}/purchase`` (the shipped route's shape, so loadtest/wrk/purchase.lua
drives both) with a Bearer token and ``{"quantity": n}``: in one transaction, the sale's
order, its item and the inbox row are written by the orders service's own writer
(services/orders/projector.write_group) from the StockReserved event the async path would
have sent, then the sale's stock row (``bench_sync_stock``, created by the suite) is
decremented if enough is left (else the transaction rolls back). 201 with the order id when
committed, 409 when sold out. No idempotency store and no rate limits: the comparison only
flatters this path.

Env: PG_DSN, JWT_SECRET, JWT_ISSUER (optional), BENCH_POOL (connections per worker).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Final

import asyncpg
import msgspec

from loadtest.suite.events import reserved
from nexuscart import _core
from services.orders.projector import write_group

NEXT_ID: Final = "SELECT nextval('bench_sync_order_ids')"
TAKE: Final = """
UPDATE bench_sync_stock SET units = units - $2
WHERE sale_id = $1 AND units >= $2
RETURNING units
"""
_json: Final = [("content-type", "application/json")]


class Body(msgspec.Struct, frozen=True):
    quantity: int = 1


_decode = msgspec.json.Decoder(Body).decode
_verifier: _core.TokenVerifier | None = None
_pool: asyncpg.Pool | None = None
_pool_lock = asyncio.Lock()


async def pool() -> asyncpg.Pool:
    global _pool
    async with _pool_lock:
        if _pool is None:
            size = int(os.environ.get("BENCH_POOL", "16"))
            _pool = await asyncpg.create_pool(os.environ["PG_DSN"], min_size=2, max_size=size)
    return _pool


class SoldOut(Exception):
    pass


async def purchase(user_id: int, sale_id: int, quantity: int) -> int | None:
    """The order rows first, the stock row last: every buyer queues on that one row's lock,
    so it is held only from its UPDATE to the commit (the best a synchronous design does)."""
    async with (await pool()).acquire() as conn:
        order_id = int(await conn.fetchval(NEXT_ID))
        try:
            async with conn.transaction():
                event = reserved(order_id, sale_id, user_id, "BENCH-SYNC", quantity)
                await write_group(conn, [event])
                if await conn.fetchval(TAKE, sale_id, quantity) is None:
                    raise SoldOut  # rolls the order back
        except SoldOut:
            return None
        return order_id


async def app(scope: Any, proto: Any) -> None:
    parts = scope.path.strip("/").split("/")
    if scope.path == "/":
        proto.response_bytes(200, _json, b"{}")  # readiness
        return
    if scope.method != "POST" or len(parts) != 3 or parts[2] != "purchase":
        proto.response_bytes(404, _json, b'{"title":"not found"}')
        return
    global _verifier
    if _verifier is None:
        secret, issuer = os.environ["JWT_SECRET"], os.environ.get("JWT_ISSUER") or None
        _verifier = _core.TokenVerifier(secret, issuer)
    try:
        user_id = _verifier.user_id(scope.headers.get("authorization"))
        body = _decode(await proto())
        sale_id = int(parts[1])
    except (_core.AuthError, msgspec.DecodeError, ValueError):
        proto.response_bytes(400, _json, b'{"title":"bad request"}')
        return
    order_id = await purchase(user_id, sale_id, body.quantity)
    if order_id is None:
        proto.response_bytes(409, _json, b'{"title":"sold out"}')
        return
    proto.response_bytes(201, _json, msgspec.json.encode({"order_id": order_id}))
