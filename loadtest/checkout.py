"""Cart and checkout load run against the configuration ``scripts/server`` ships, on
loopback, with the generator's catalog sized to hold at least --skus SKUs (default 10,000).

Phases (each bounded in time, 127.0.0.1 only, wrk with every request built in init):
  1. ceiling   wrk on a bare Granian RSGI JSON endpoint (loadtest/bare_app.py) at
               --connections: the most this machine serves with the same wrk
  2. cart      after --warmup seconds of every product page (each product's page requested
               3x per worker, so every worker has built it: a running store's pages of
               what sells are cached, and the run measures that state, not PostgreSQL
               reads of first views), then cart writes; measured: cart writes of
               signed-in buyers (one token per buyer): POST /cart/items (one more unit)
               and PUT /cart/items/{sku} (back to one unit), alternating (the issue's
               bar: >= 10,000 req/s, p99 <= 20 ms); again with --cart-connections (64):
               256 closed-loop clients at the box's top rate wait in a queue of 256, so
               their p99 is that queue; then the same writes open loop (vegeta) at
               --cart-rate/s, the tail at that offered rate (the bare endpoint is given
               the same requests at the same rate, and at 64 connections, in phase 1)
  3. checkout  POST /checkout of a 3-line cart per buyer (lines drawn by the generator's
               popularity over every SKU), each buyer once, one Idempotency-Key each
               (the bar: >= 5,000 checkouts/s, p99 <= 150 ms); the orders placed are
               counted in Redis (a request replayed by wrk cycling is not an order), then
               the time until the relay has moved every OrderPlaced to Kafka

Every SKU's catalog level is raised (a newer version, 10^6 units) so that the run measures
checkouts, not refusals; the buyers' carts are written straight to Redis before the run
(adapters/carts.py's layout) so that each checkout has its cart.

Usage: scripts/bench checkout [--workers 2] [--seconds 20] [--skus 10000] [--buyers 200000]
                             [--connections 256] [--warmup 30] [--cart-rate 10000]
                             [--cart-connections 64]
Writes loadtest/reports/checkout-<time>.md and .json, and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import random
import sys
import time
from pathlib import Path
from typing import Any

from devtools import catalog_gen, devstack
from loadtest.storm import (
    HERE,
    ROOT,
    Server,
    count_until,
    phase_table,
    save_report,
    vegeta,
    vegeta_target,
    workdir,
    wrk,
)
from nexuscart import auth
from nexuscart.adapters import carts, reservations
from nexuscart.domain.cart import encode_line

SCRIPT = HERE / "wrk/checkout.lua"
FIRST_BUYER = 900_000_000  # buyers' user ids (no account needed: the token is the buyer)
LINES = 3


def catalog_for(skus: int) -> tuple[int, list[tuple[int, str, int, str]]]:
    """The generator's product count holding ``skus`` SKUs, and the active products'
    (product id, sku, price, currency), in popularity order."""
    n, count = 0, 0
    for p in catalog_gen.products(10 * skus):
        n, count = p.product_id, count + len(p.variants)
        if count >= skus:
            break
    by_id = {p.product_id: p for p in catalog_gen.products(n) if p.status == "active"}
    out: list[tuple[int, str, int, str]] = []
    for pid in catalog_gen.popularity_order(n):
        found = by_id.get(pid)
        if found is not None:
            out.extend((pid, v.sku, v.price_minor, v.currency) for v in found.variants)
    return n, out


def _line(method: str, path: str, tok: str, body: str) -> str:
    return f"{method}\t{path}\t{tok}\t{body}"


async def prepare(
    redis_url: str,
    secret: str,
    offers: list[tuple[int, str, int, str]],
    buyers: int,
    work: Path,
    workers: int = 2,
) -> tuple[Path, Path, Path]:
    """Raise every SKU's level, write each buyer's 3-line cart; -> (warm-up, cart requests,
    checkout requests) files for checkout.lua."""
    import redis.asyncio as aioredis

    from nexuscart.adapters.catalog_store import CatalogStore, StockLevel

    client = aioredis.Redis.from_url(redis_url)
    try:
        # as the stock-adjustment API writes a level: the catalog's and the checkout's copy
        mirror = reservations.ReservationStore(client).mirror_levels
        await CatalogStore(client, mirror=mirror).set_levels(
            (sku, StockLevel(1, 1_000_000, 5)) for _, sku, _, _ in offers
        )
        rng = random.Random("checkout-bench")
        # a Zipf-like draw over SKUs in popularity order: rank r drawn with weight 1/(r+10)
        # cumulative once: rng.choices with weights sums all of them on every draw
        cum = list(itertools.accumulate(1.0 / (r + 10) for r in range(len(offers))))
        cart_reqs, checkout_reqs = [], []
        pipe = client.pipeline(transaction=False)
        for i in range(buyers):
            uid = FIRST_BUYER + i
            tok = auth.issue(secret, uid, ttl_s=3_600, roles=("customer",))
            chosen: dict[str, tuple[int, str, int, str]] = {}
            while len(chosen) < LINES:
                o = rng.choices(offers, cum_weights=cum)[0]
                chosen[o[1]] = o
            fields: dict[Any, Any] = {"_v": "1", "_c": next(iter(chosen.values()))[3]}
            for pid, sku, price, cur in chosen.values():
                fields[sku] = encode_line(pid, 1, price, cur)
            key = carts.user_cart(uid)
            pipe.delete(key)
            pipe.hset(key, mapping=fields)
            pid, sku = next(iter(chosen.values()))[:2]
            cart_reqs.append(
                _line("POST", "/cart/items", tok, f'{{"product_id":{pid},"sku":"{sku}"}}')
            )
            cart_reqs.append(_line("PUT", f"/cart/items/{sku}", tok, '{"quantity":1}'))
            checkout_reqs.append(_line("POST", "/checkout", tok, "{}"))
            if len(pipe) >= 5_000:
                await pipe.execute()
        await pipe.execute()
    finally:
        await client.aclose()
    cart_file = work / "cart.txt"
    cart_file.write_text("\n".join(cart_reqs) + "\n")
    checkout_file = work / "checkout.txt"
    checkout_file.write_text("\n".join(checkout_reqs) + "\n")
    # every product page 3x per worker (connections land on workers at random), then cart
    # writes for the rest of the warm-up. Anonymous views: one buyer's thousands of views
    # would feed the recommendation service's signals (work the measured phases do not do)
    pids = sorted({pid for pid, _, _, _ in offers})
    pages: list[str] = []
    for _ in range(3 * workers):
        rng.shuffle(pids)
        pages += [_line("GET", f"/products/{pid}", "-", "") for pid in pids]
    warm_file = work / "warm.txt"
    warm_file.write_text("\n".join(pages + cart_reqs) + "\n")
    return warm_file, cart_file, checkout_file


def vegeta_targets(reqs: Path, url: str, out: Path) -> Path:
    """checkout.lua's request lines as vegeta's JSON targets on ``url``, each with its own
    Idempotency-Key."""
    with out.open("w") as f:
        for i, line in enumerate(reqs.read_text().splitlines()):
            method, path, tok, body = line.split("\t", 3)
            header = {"Content-Type": ["application/json"], "Idempotency-Key": [f"open-{i}"]}
            if tok != "-":
                header["Authorization"] = [f"Bearer {tok}"]
            f.write(
                vegeta_target(method, url + path, header, base64.b64encode(body.encode()).decode())
            )
    return out


async def _orders_and_backlog(redis_url: str) -> tuple[int, int]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        seq = int(await client.get(reservations.SEQ) or 0)
        backlog = int(await client.xlen(reservations.OUTBOX))
    finally:
        await client.aclose()
    return seq, backlog


async def _commands_per_s(redis_url: str) -> float:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        a = int((await client.info("stats"))["total_commands_processed"])
        await asyncio.sleep(1.0)
        b = int((await client.info("stats"))["total_commands_processed"])
    finally:
        await client.aclose()
    return float(b - a - 2)  # less this probe's own


def settled_after(redis_url: str, quiet_per_s: float, limit_s: float) -> float | None:
    """Seconds until the services have caught up with the previous phase: Redis serves
    fewer than ``quiet_per_s`` commands/s (the recommendation service applies a cart
    write's signal for each one it was sent, long after the phase; measured meanwhile,
    the checkouts would share Redis with that backlog, not with their own signals)."""
    t = time.monotonic()
    while time.monotonic() - t < limit_s:
        if asyncio.run(_commands_per_s(redis_url)) < quiet_per_s:
            return time.monotonic() - t
    return None


def drained_after(redis_url: str, limit_s: float = 120.0) -> float | None:
    """Seconds until the checkout outbox is empty (the relay moved it to Kafka)."""
    t = time.monotonic()
    while time.monotonic() - t < limit_s:
        if asyncio.run(_orders_and_backlog(redis_url))[1] == 0:
            return time.monotonic() - t
        time.sleep(0.2)
    return None


def _table(r: dict[str, Any]) -> str:
    out = phase_table(
        r,
        [
            ("ceiling", "ceiling"),
            ("cart", "ceiling"),
            ("ceiling_few", "ceiling_few"),
            ("cart_few", "ceiling_few"),
            ("checkout", "ceiling"),
        ],
    )
    c, pg = r["checkout"], r["orders_in_pg"]
    drained = (
        "not within 120 s" if r["outbox_drained_s"] is None else f"{r['outbox_drained_s']:.1f} s"
    )
    settled = "not within --settle" if r["settled_s"] is None else f"{r['settled_s']:.0f} s"
    out += [
        "",
        "Cart writes open loop (vegeta, fixed offered rate; the bare endpoint given the same"
        " requests at the same rate):",
        "",
        "| | offered/s | sent/s | 2xx/s | p50 ms | p99 ms | max ms | statuses | vegeta's cores |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {name} | {o['rate']} | {o['sent_per_s']:.0f} | {o['throughput']:.0f} |"
            f" {o['p50_ms']:.2f} | {o['p99_ms']:.2f} | {o['max_ms']:.1f} | {o['status_codes']} |"
            f" {o['generator_cores']} |"
            for name, o in (("bare Granian", r["cart_open_ceiling"]), ("cart", r["cart_open"]))
        ),
        "",
        f"Between the cart and checkout phases the services caught up with the cart writes'"
        f" signals (Redis below 2,000 commands/s) in {settled}.",
        f"Orders placed: {c['orders']} in {r['seconds']} s ({c['orders_per_s']:.0f}/s); outbox "
        f"backlog at the end {c['backlog']}, drained to Kafka {drained} later.",
        f"Orders in PostgreSQL (the orders service's rows): {pg['rows']} of {pg['of']},"
        f" {pg['s']:.1f} s after the checkout phase ended.",
    ]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--skus", type=int, default=10_000)
    ap.add_argument("--buyers", type=int, default=200_000, help="one checkout each, at most")
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=30, help="s of page views, then cart writes")
    ap.add_argument("--cart-rate", type=int, default=10_000, help="cart writes/s, open loop")
    ap.add_argument(
        "--cart-connections", type=int, default=64, help="cart writes again, with fewer clients"
    )
    ap.add_argument("--server-arg", action="append", default=[])
    ap.add_argument(
        "--settle", type=int, default=180, help="s at most to wait for the services between phases"
    )
    args = ap.parse_args()

    work = workdir("nexuscart-bench-checkout-")
    server: Server | None = None
    bare: devstack.GranianServer | None = None
    conns = args.connections
    try:
        bare = devstack.GranianServer(
            "loadtest.bare_app:app", {}, workers=args.workers, cwd=ROOT, ready_path="/"
        )
        results: dict[str, Any] = {"workers": args.workers, "seconds": args.seconds}
        r = wrk(f"{bare.url}/", HERE / "wrk/get.lua", args.seconds, conns, {"PATH_TO_GET": "/"})
        results["ceiling"] = {**r, "connections": conns}
        few = args.cart_connections
        r = wrk(f"{bare.url}/", HERE / "wrk/get.lua", args.seconds, few, {"PATH_TO_GET": "/"})
        results["ceiling_few"] = {**r, "connections": few}

        server = srv = Server(args.workers, work, args.server_arg)
        n, offers = catalog_for(args.skus)
        asyncio.run(catalog_gen.load(srv.env["PG_DSN"], srv.env["REDIS_URL"], n))
        results["products"], results["skus"] = n, len(offers)
        warm_file, cart_file, checkout_file = asyncio.run(
            prepare(
                srv.env["REDIS_URL"], srv.env["JWT_SECRET"], offers, args.buyers, work, args.workers
            )
        )
        print(f"{n} products, {len(offers)} SKUs, {args.buyers} carts", file=sys.stderr)
        targets = vegeta_targets(cart_file, bare.url, work / "bare-targets.json")
        results["cart_open_ceiling"] = vegeta(targets, args.cart_rate, args.seconds)
        bare.stop()
        bare = None

        # warm: every worker builds every product page once (a PostgreSQL read
        # each); the figures are the steady state a running store is in
        wrk(srv.url, SCRIPT, args.warmup, conns, {"REQS": str(warm_file)})
        r = wrk(srv.url, SCRIPT, args.seconds, conns, {"REQS": str(cart_file)})
        results["cart"] = {**r, "connections": conns}
        print(f"cart: {r['rps']:.0f} req/s, p99 {r['p99']}", file=sys.stderr)
        results["cart_settled_s"] = settled_after(srv.env["REDIS_URL"], 2_000, args.settle)
        r = wrk(srv.url, SCRIPT, args.seconds, few, {"REQS": str(cart_file)})
        results["cart_few"] = {**r, "connections": few}
        print(f"cart at {few} connections: {r['rps']:.0f} req/s, p99 {r['p99']}", file=sys.stderr)
        results["cart_open_settled_s"] = settled_after(srv.env["REDIS_URL"], 2_000, args.settle)
        targets = vegeta_targets(cart_file, srv.url, work / "cart-targets.json")
        r = results["cart_open"] = vegeta(targets, args.cart_rate, args.seconds)
        print(
            f"cart open loop: {r['sent_per_s']:.0f}/s sent, p99 {r['p99_ms']:.1f} ms",
            file=sys.stderr,
        )

        results["settled_s"] = settled_after(srv.env["REDIS_URL"], 2_000, args.settle)
        before, _ = asyncio.run(_orders_and_backlog(srv.env["REDIS_URL"]))
        r = wrk(srv.url, SCRIPT, args.seconds, conns, {"REQS": str(checkout_file)})
        ended = time.monotonic()
        after, backlog = asyncio.run(_orders_and_backlog(srv.env["REDIS_URL"]))
        orders = after - before
        results["checkout"] = {
            **r,
            "connections": conns,
            "orders": orders,
            "orders_per_s": orders / args.seconds,
            "backlog": backlog,
        }
        print(f"checkout: {orders / args.seconds:.0f} orders/s, p99 {r['p99']}", file=sys.stderr)
        if orders >= args.buyers:
            print("every buyer checked out: raise --buyers for a longer run", file=sys.stderr)
        results["outbox_drained_s"] = drained_after(srv.env["REDIS_URL"])
        # the orders service's rows: every everyday order (ids from 2^52) placed so far
        sql = "SELECT count(*) FROM orders WHERE order_id >= $1"
        in_pg = asyncio.run(
            count_until(srv.env["PG_DSN"], sql, reservations.ORDER_BASE, after, 300)
        )
        results["orders_in_pg"] = {"rows": in_pg, "of": after, "s": time.monotonic() - ended}

        table = _table(results)
        save_report(
            "checkout",
            f"# Cart and checkout load run\n\n{args.workers} workers, {len(offers)} SKUs, "
            f"{args.buyers} buyers, {args.seconds} s per phase\n\n{table}",
            results,
        )
        print(table)
        return 0
    finally:
        if bare is not None:
            bare.stop()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
