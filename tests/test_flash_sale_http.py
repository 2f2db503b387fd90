"""Flash sales through the real edge (Granian, 2 workers) on the real stack."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest

from nexuscart import auth, config, tasks
from nexuscart.adapters.flash_sales import PURCHASE
from tests import rawhttp
from tests.conftest import EdgeServer

_users = iter(range(10_000_000, 20_000_000))
# an admin's access token (the admin routes need the admin role)
ADMIN = {
    "authorization": "Bearer "
    + auth.issue(config.dev_defaults()["JWT_SECRET"], 9_999_999, ttl_s=86_000, roles=("admin",))
}


def token(user_id: int, ttl_s: int = 3600) -> str:
    return auth.issue(config.dev_defaults()["JWT_SECRET"], user_id, ttl_s=ttl_s)


def buyer_headers(user_id: int, key: str | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {token(user_id)}", "idempotency-key": key or uuid.uuid4().hex}


def create_sale(
    edge: EdgeServer, units: int, limit: int = 1, hold_ttl_s: int = 600, **extra: Any
) -> dict[str, Any]:
    now = int(time.time() * 1000)
    body = {
        "sku": "FLASH-1",
        "units": units,
        "price_cents": 999,
        "per_user_limit": limit,
        "starts_at_ms": now - 1000,
        "ends_at_ms": now + 3_600_000,
        "hold_ttl_s": hold_ttl_s,
        **extra,
    }
    r = httpx.post(
        f"{edge.url}/admin/flash-sales",
        json=body,
        headers={**ADMIN, "idempotency-key": uuid.uuid4().hex},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    sale: dict[str, Any] = r.json()
    return sale


def sale_state(edge: EdgeServer, sale_id: int) -> dict[str, Any]:
    r = httpx.get(f"{edge.url}/flash-sales/{sale_id}", timeout=10)
    assert r.status_code == 200
    out: dict[str, Any] = r.json()
    return out


async def _storm(
    edge: EdgeServer, sale_id: int, users: list[int], keys: dict[int, str] | None = None
) -> list[rawhttp.Reply]:
    calls = [
        rawhttp.Call.post_json(
            f"/flash-sales/{sale_id}/purchase",
            {"quantity": 1},
            buyer_headers(u, (keys or {}).get(u)),
        )
        for u in users
    ]
    return await rawhttp.run(edge.url, calls, concurrency=64)


async def _purchase_scripts_during(redis_client: Any, work: Awaitable[object]) -> int:
    """The purchase script's runs in Redis while ``work`` runs, seen by MONITOR (INFO's
    counters would also count the edge's background scripts, such as the recommendations'
    availability snapshot)."""
    seen: list[str] = []
    async with redis_client.monitor() as m:

        async def collect() -> None:
            while True:
                seen.append((await m.next_command())["command"])

        collector = asyncio.ensure_future(collect())
        try:
            await work
            await asyncio.sleep(0.3)  # what ran reaches the monitor
        finally:
            await tasks.stop(collector)
    return sum(1 for c in seen if c.startswith("EVALSHA") and PURCHASE.sha in c)


async def test_2000_buyers_for_500_units_get_exactly_500_holds(
    edge: EdgeServer, redis_client: Any
) -> None:
    sale = create_sale(edge, units=500)
    sid = sale["sale_id"]
    users = [next(_users) for _ in range(2000)]
    keys = {u: uuid.uuid4().hex for u in users}
    responses: list[Any] = []

    async def storm() -> None:
        responses.extend(await _storm(edge, sid, users, keys))

    assert await _purchase_scripts_during(redis_client, storm()) > 0  # the monitor sees them
    statuses = [r.status for r in responses]
    assert statuses.count(202) == 500
    assert statuses.count(409) == 1500
    assert all(r.json()["type"] == "/problems/sold-out" for r in responses if r.status == 409)
    winners = {u: r.json() for u, r in zip(users, responses, strict=True) if r.status == 202}
    assert len({w["order_id"] for w in winners.values()}) == 500
    state = sale_state(edge, sid)
    assert (state["available"], state["held"], state["sold"], state["state"]) == (
        0,
        500,
        0,
        "sold_out",
    )

    # Retries with the same key answer the same hold, even after the sale sold out.
    retry_users = list(winners)[:50]
    replays = await _storm(edge, sid, retry_users, keys)
    for u, r in zip(retry_users, replays, strict=True):
        assert r.status == 202
        assert r.json()["order_id"] == winners[u]["order_id"]
        assert r.headers["idempotent-replayed"] == "true"
    assert sale_state(edge, sid)["held"] == 500

    # After sell-out, non-buyers are refused in-process: no Redis command per rejection.
    await _storm(edge, sid, [next(_users) for _ in range(100)])
    await asyncio.sleep(0.5)
    late: list[Any] = []

    async def late_storm() -> None:
        late.extend(await _storm(edge, sid, [next(_users) for _ in range(500)]))

    assert await _purchase_scripts_during(redis_client, late_storm()) == 0
    assert len(late) == 500
    assert all(r.status == 409 for r in late)


async def test_expired_hold_returns_its_unit_and_reopens_the_sale_on_every_worker(
    edge: EdgeServer, settings: config.Settings
) -> None:
    import redis.asyncio as aioredis

    from nexuscart.adapters.flash_sales import FlashSaleStore
    from services.inventory.holds import expire_due

    sale = create_sale(edge, units=1, hold_ttl_s=1)
    sid = sale["sale_id"]
    first = await _storm(edge, sid, [next(_users) for _ in range(20)])
    assert [r.status for r in first].count(202) == 1
    await asyncio.sleep(1.1)
    client = aioredis.Redis.from_url(settings.redis.url)
    try:
        assert await expire_due(FlashSaleStore(client)) >= 1
    finally:
        await client.aclose()
    assert sale_state(edge, sid)["available"] == 1
    # restock so every admitted request can succeed, then give workers one refresh interval
    async with httpx.AsyncClient() as http:
        r = await http.patch(
            f"{edge.url}/admin/flash-sales/{sid}",
            json={"units": 41},
            headers={**ADMIN, "idempotency-key": uuid.uuid4().hex},
            timeout=10,
        )
    assert r.status_code == 200, r.text
    await asyncio.sleep(0.5)
    again = await _storm(edge, sid, [next(_users) for _ in range(40)])
    assert [r.status for r in again] == [202] * 40


async def test_one_user_beyond_the_rate_limit_gets_429_with_retry_after(edge: EdgeServer) -> None:
    sale = create_sale(edge, units=100, limit=1)
    user = next(_users)
    responses = await _storm(edge, sale["sale_id"], [user] * 40)
    limited = [r for r in responses if r.status == 429]
    assert limited, [r.status for r in responses]
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert [r.status for r in responses].count(202) == 1


BAD_REQUESTS: list[tuple[str, Any, dict[str, str] | None, int, str]] = [
    ("no token", {"quantity": 1}, {"authorization": ""}, 401, "unauthorized"),
    (
        "expired token",
        {"quantity": 1},
        {
            "authorization": "Bearer "
            + auth.issue(config.dev_defaults()["JWT_SECRET"], 5, ttl_s=-10)
        },
        401,
        "unauthorized",
    ),
    (
        "forged token",
        {"quantity": 1},
        {"authorization": "Bearer " + auth.issue("not-the-secret", 5)},
        401,
        "unauthorized",
    ),
    (
        "no idempotency key",
        {"quantity": 1},
        {"idempotency-key": ""},
        400,
        "idempotency-key-required",
    ),
    ("quantity as string", {"quantity": "1"}, None, 422, "validation-error"),
    ("zero quantity", {"quantity": 0}, None, 422, "validation-error"),
    ("negative quantity", {"quantity": -3}, None, 422, "validation-error"),
    ("huge quantity", {"quantity": 10**30}, None, 422, "validation-error"),
    ("missing quantity", {}, None, 422, "validation-error"),
    ("unknown field", {"quantity": 1, "price": 0}, None, 422, "validation-error"),
    ("not json", b"{quantity: 1", None, 400, "malformed-body"),
    ("json array", [1], None, 422, "validation-error"),
    (
        "oversized body",
        b'{"quantity": 1, "pad": "' + b"x" * 70_000 + b'"}',
        None,
        413,
        "body-too-large",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "slug"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_purchase_input_gets_a_clear_4xx_and_changes_nothing(
    edge: EdgeServer, case: str, body: Any, headers: dict[str, str] | None, status: int, slug: str
) -> None:
    sale = create_sale(edge, units=5)
    sid = sale["sale_id"]
    h = {**buyer_headers(next(_users)), **(headers or {})}
    h = {k: v for k, v in h.items() if v}
    kw: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{edge.url}/flash-sales/{sid}/purchase", headers=h, timeout=10, **kw)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == f"/problems/{slug}"
    assert sale_state(edge, sid)["available"] == 5


async def test_bad_bodies_release_their_in_flight_slot(edge: EdgeServer) -> None:
    # More bad requests than one worker's in-flight cap (512): a leaked slot would turn the
    # good purchase at the end into 503 busy.
    sid = create_sale(edge, units=1)["sale_id"]
    bad = [
        rawhttp.Call.post_json(
            f"/flash-sales/{sid}/purchase", {"quantity": "x"}, buyer_headers(next(_users))
        )
        for _ in range(1_200)
    ]
    replies = await rawhttp.run(edge.url, bad, concurrency=32)
    assert {r.status for r in replies} == {422}
    good = await _storm(edge, sid, [next(_users) for _ in range(4)])
    assert sorted(r.status for r in good) == [202, 409, 409, 409]


@pytest.mark.parametrize("pad", [0, 4_000, 50_000])
def test_a_sold_out_refusal_skips_the_body_and_keeps_the_connection(
    edge: EdgeServer, pad: int
) -> None:
    # Documented order (docs/api.md): auth, sale id, Idempotency-Key, admission, then body.
    # The gate refuses before the body is read; the unread body must not end the keep-alive
    # connection nor be taken for the next request (sent pipelined, right behind it).
    # Each request goes out in one write, as wrk and buffering proxies send it: a body that
    # arrives after the refusal makes Granian close the connection once the 409 is sent.
    import re
    import socket

    sid = create_sale(edge, units=0)["sale_id"]

    def purchase(body: bytes) -> bytes:
        head = "".join(
            f"{k}: {v}\r\n"
            for k, v in {
                **buyer_headers(next(_users)),
                "content-type": "application/json",
                "content-length": str(len(body)),
            }.items()
        )
        path = f"/flash-sales/{sid}/purchase"
        return f"POST {path} HTTP/1.1\r\nHost: t\r\n{head}\r\n".encode() + body

    def statuses(conn: socket.socket, request: bytes, n: int) -> list[bytes]:
        conn.sendall(request)
        data = b""
        while len(re.findall(rb"HTTP/1.1 \d+", data)) < n:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        return re.findall(rb"HTTP/1.1 (\d+)", data)

    # "pad" is an unknown field: a 409 (not 422) shows the body was never decoded
    body = json.dumps({"quantity": 1, "pad": "x" * pad}).encode()
    healthz = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as conn:
        # one connection, one worker: let Redis tell it the sale is sold out, then wait
        # until its gate refuses by itself (the flag is set asynchronously)
        assert statuses(conn, purchase(b'{"quantity": 1}'), 1) == [b"409"]
        deadline = time.monotonic() + 5
        while statuses(conn, purchase(b"{not json"), 1) != [b"409"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert statuses(conn, purchase(body) + healthz, 2) == [b"409", b"200"]


def test_chunked_body_over_the_limit_is_413(edge: EdgeServer) -> None:
    sid = create_sale(edge, units=5)["sale_id"]

    def chunks() -> Any:
        yield b'{"quantity": 1, "pad": "'
        for _ in range(10):
            yield b"x" * 10_000
        yield b'"}'

    r = httpx.post(
        f"{edge.url}/flash-sales/{sid}/purchase",
        content=chunks(),
        headers=buyer_headers(next(_users)),
        timeout=10,
    )
    assert r.status_code == 413, r.text
    assert r.json()["type"] == "/problems/body-too-large"
    assert sale_state(edge, sid)["available"] == 5


@pytest.mark.parametrize(
    "path",
    ["/flash-sales/999999/purchase", "/flash-sales/abc/purchase", "/flash-sales/-1/purchase"],
)
def test_purchase_of_unknown_sale_is_404(edge: EdgeServer, path: str) -> None:
    r = httpx.post(
        f"{edge.url}{path}", json={"quantity": 1}, headers=buyer_headers(next(_users)), timeout=10
    )
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


def test_admin_routes_need_an_admin_token_and_valid_bodies(edge: EdgeServer) -> None:
    now = int(time.time() * 1000)
    good = {"sku": "X", "units": 1, "price_cents": 1, "starts_at_ms": now, "ends_at_ms": now + 1000}
    key = {"idempotency-key": uuid.uuid4().hex}
    r = httpx.post(f"{edge.url}/admin/flash-sales", json=good, headers=key, timeout=10)
    assert r.status_code == 401
    customer = {"authorization": f"Bearer {token(next(_users))}"}
    r = httpx.post(
        f"{edge.url}/admin/flash-sales", json=good, headers={**customer, **key}, timeout=10
    )
    assert (r.status_code, r.json()["type"]) == (403, "/problems/forbidden")
    r = httpx.post(
        f"{edge.url}/admin/flash-sales",
        json={**good, "ends_at_ms": now - 1},
        headers={**ADMIN, **key},
        timeout=10,
    )
    assert r.status_code == 422
    r = httpx.post(
        f"{edge.url}/admin/flash-sales",
        json={**good, "units": -1},
        headers={**ADMIN, **key},
        timeout=10,
    )
    assert r.status_code == 422
    first = httpx.post(
        f"{edge.url}/admin/flash-sales", json=good, headers={**ADMIN, **key}, timeout=10
    )
    again = httpx.post(
        f"{edge.url}/admin/flash-sales", json=good, headers={**ADMIN, **key}, timeout=10
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["sale_id"] == again.json()["sale_id"]


def test_ended_and_not_started_sales_refuse_purchases(edge: EdgeServer) -> None:
    later = create_sale(edge, units=3, starts_at_ms=int(time.time() * 1000) + 60_000)
    r = httpx.post(
        f"{edge.url}/flash-sales/{later['sale_id']}/purchase",
        json={"quantity": 1},
        headers=buyer_headers(next(_users)),
        timeout=10,
    )
    assert (r.status_code, r.json()["type"]) == (409, "/problems/not-started")
    sale = create_sale(edge, units=3)
    r = httpx.post(
        f"{edge.url}/admin/flash-sales/{sale['sale_id']}/end",
        headers={**ADMIN, "idempotency-key": uuid.uuid4().hex},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.json()["state"] == "ended"
    r = httpx.post(
        f"{edge.url}/flash-sales/{sale['sale_id']}/purchase",
        json={"quantity": 1},
        headers=buyer_headers(next(_users)),
        timeout=10,
    )
    assert (r.status_code, r.json()["type"]) == (409, "/problems/ended")


def test_openapi_describes_every_route(edge: EdgeServer) -> None:
    spec = httpx.get(f"{edge.url}/openapi.json", timeout=10).json()
    paths = spec["paths"]
    for path, method in [
        ("/flash-sales/{sale_id}/purchase", "post"),
        ("/admin/flash-sales", "post"),
        ("/users/me/orders", "get"),
        ("/orders/{order_id}", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths[path]


def test_every_route_documented_as_secured_refuses_anonymous_callers(edge: EdgeServer) -> None:
    # Handlers check credentials themselves; the OpenAPI security entry must not promise
    # more than they enforce.
    paths = httpx.get(f"{edge.url}/openapi.json", timeout=10).json()["paths"]
    secured = [
        (method, path)
        for path, ops in paths.items()
        for method, op in ops.items()
        if op.get("security")
    ]
    assert len(secured) >= 6
    for method, path in secured:
        url = edge.url + path.replace("{sale_id}", "1").replace("{order_id}", "1")
        r = httpx.request(
            method, url, json={}, headers={"idempotency-key": uuid.uuid4().hex}, timeout=10
        )
        assert r.status_code == 401, (method, path, r.text)


async def test_buyer_reads_own_orders_with_pagination_and_not_others(
    edge: EdgeServer, settings: config.Settings
) -> None:
    import asyncpg

    # Orders are written by services/orders; here they are inserted directly, as it would.
    user, other = next(_users), next(_users)
    conn = await asyncpg.connect(settings.postgres.dsn)
    try:
        for oid in (101, 102, 103):
            await conn.execute(
                "INSERT INTO orders (user_id, order_id, sale_id, status, total_cents)"
                " VALUES ($1, $2, NULL, 'PENDING_PAYMENT', 500)",
                user,
                oid,
            )
            await conn.execute(
                "INSERT INTO order_items (user_id, order_id, line_no, sku, quantity,"
                " unit_price_cents) VALUES ($1, $2, 1, 'X', 1, 500)",
                user,
                oid,
            )
    finally:
        await conn.close()
    auth_h = {"authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as client:
        page1 = (await client.get("/users/me/orders?limit=2", headers=auth_h)).json()
        assert [o["order_id"] for o in page1["items"]] == [103, 102]
        page2 = (
            await client.get(
                f"/users/me/orders?limit=2&cursor={page1['next_cursor']}", headers=auth_h
            )
        ).json()
        assert [o["order_id"] for o in page2["items"]] == [101]
        assert page2["next_cursor"] is None
        one = await client.get("/orders/102", headers=auth_h)
        assert one.json()["items"] == [
            {"line_no": 1, "sku": "X", "quantity": 1, "unit_price_cents": 500}
        ]
        theirs = await client.get(
            "/orders/102", headers={"authorization": f"Bearer {token(other)}"}
        )
        assert theirs.status_code == 404
        bad = await client.get("/users/me/orders?limit=0", headers=auth_h)
        assert bad.status_code == 400
        assert (await client.get("/users/me/orders")).status_code == 401
