"""Catalog load run against the configuration ``scripts/server`` ships, on loopback, with
the generator's catalog (default 100,000 products) loaded once the server is up.

Phases (each bounded in time, 127.0.0.1 only, wrk):
  1. ceiling      wrk on a bare Granian RSGI JSON endpoint (loadtest/bare_app.py) at 256 and
                  at 64 connections: the most this machine serves with the same wrk
  2. page         GET /products/{id} over a Zipf mix of the products (the generator's
                  popularity: a few products take most views; drafts drawn again),
                  256 connections, after --warmup seconds of the same mix (the caches'
                  steady state); then page_hit: the most popular product's page only
                  (every view a cache hit), to tell the hit path from the misses
  3. inventory    GET /inventory with 10 SKUs of Zipf-drawn products, at 256 and at 64
                  connections (the issue's bars: >= 30,000 req/s; p99 <= 10 ms at 64)
  4. freshness    --changes price changes of popular products (PATCH of a variant as an
                  admin) while wrk reads pages at 64 connections: for each, the time from
                  the write's answer until 10 reads in a row on fresh connections (both
                  workers) show the new price; p50, p99, max

Usage: scripts/bench catalog [--workers 2] [--seconds 20] [--products 100000] [--changes 50]
                            [--warmup 20]
Writes loadtest/reports/catalog-<time>.md and .json, and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from devtools import catalog_gen, devstack
from loadtest.storm import HERE, ROOT, Server, admin_token, phase_table, save_report, workdir, wrk

PATHS_PER_FILE = 50_000
SKUS_PER_CHECK = 10


def page_paths(
    z: catalog_gen.ZipfProducts, n: int, seed: int, hidden: set[int] | frozenset[int] = frozenset()
) -> list[str]:
    """Views of products drawn by popularity; ``hidden`` (drafts: 404 to shoppers, who do
    not see links to them) are drawn again."""
    rng = random.Random(f"pages:{seed}")
    out: list[str] = []
    while len(out) < n:
        pid = z.draw(rng)
        if pid not in hidden:
            out.append(f"/products/{pid}")
    return out


async def drafts(dsn: str) -> set[int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT product_id FROM products WHERE status <> 'active'")
    finally:
        await conn.close()
    return {r[0] for r in rows}


def _most_popular(z: catalog_gen.ZipfProducts, hidden: set[int]) -> int:
    return next(pid for pid in z.order if pid not in hidden)


def inventory_paths(z: catalog_gen.ZipfProducts, n: int, seed: int) -> list[str]:
    """Checks of 10 SKUs each, products drawn by popularity, a variant of each (the
    generator's SKUs are SKU-<id>-1.. and every product has at least one)."""
    rng = random.Random(f"inventory:{seed}")
    out = []
    for _ in range(n):
        skus = [catalog_gen.sku_of(z.draw(rng), 0) for _ in range(SKUS_PER_CHECK)]
        out.append("/inventory?" + "&".join(f"sku={s}" for s in skus))
    return out


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def freshness(base: str, secret: str, products: list[int], changes: int) -> dict[str, Any]:
    """Price changes of ``products`` in turn; the time from each write's answer until 10
    reads in a row (each on a new connection, so both workers answer) show the new price."""
    auth = {"authorization": f"Bearer {admin_token(secret)}"}
    lags: list[float] = []
    with httpx.Client(base_url=base, timeout=10) as http:
        for i in range(changes * 2):
            if len(lags) == changes:
                break
            pid = products[i % len(products)]
            page = http.get(f"/products/{pid}")
            if page.status_code == 404:
                continue  # a draft (the generator drafts ~3%)
            page.raise_for_status()
            variant = page.json()["variants"][0]
            price = variant["price_minor"] + 1
            r = http.patch(
                f"/products/{pid}/variants/{variant['sku']}",
                json={"price_minor": price},
                headers={
                    **auth,
                    "if-match": page.headers["etag"],
                    "idempotency-key": uuid.uuid4().hex,
                },
            )
            r.raise_for_status()
            written = time.perf_counter()
            first_seen: float | None = None
            streak = 0
            deadline = written + 30
            while streak < 10:
                if time.perf_counter() > deadline:
                    sys.exit(f"product {pid}: the new price was not served within 30 s")
                got = httpx.get(f"{base}/products/{pid}", headers={"connection": "close"})
                t = time.perf_counter()  # answered by now: an upper bound of the lag
                if got.json()["variants"][0]["price_minor"] == price:
                    first_seen = t if streak == 0 else first_seen
                    streak += 1
                else:
                    streak = 0
            assert first_seen is not None
            lags.append(max(0.0, first_seen - written))
    if not lags:
        sys.exit("no active product among the popular ones")
    lags.sort()
    return {
        "changes": len(lags),
        "p50_ms": 1000 * statistics.median(lags),
        "p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))],
        "max_ms": 1000 * lags[-1],
    }


def _table(results: dict[str, Any]) -> str:
    out = phase_table(
        results,
        [
            ("ceiling_256", "ceiling_256"),
            ("page", "ceiling_256"),
            ("page_hit", "ceiling_256"),
            ("inventory_256", "ceiling_256"),
            ("ceiling_64", "ceiling_64"),
            ("inventory_64", "ceiling_64"),
        ],
    )
    f = results["freshness"]
    out.append("")
    out.append(
        f"Freshness over {f['changes']} price changes (pages read at 64 connections meanwhile): "
        f"p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, max {f['max_ms']:.1f} ms"
    )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--products", type=int, default=catalog_gen.DEFAULT_PRODUCTS)
    ap.add_argument("--changes", type=int, default=50, help="price changes for freshness")
    ap.add_argument("--warmup", type=int, default=20, help="seconds of page views before")
    ap.add_argument("--server-arg", action="append", default=[])
    args = ap.parse_args()

    work = workdir("nexuscart-bench-catalog-")
    server: Server | None = None
    bare: devstack.GranianServer | None = None
    try:
        bare = devstack.GranianServer(
            "loadtest.bare_app:app", {}, workers=args.workers, cwd=ROOT, ready_path="/"
        )
        results: dict[str, Any] = {
            "workers": args.workers,
            "seconds": args.seconds,
            "products": args.products,
        }
        for conns in (256, 64):
            r = wrk(f"{bare.url}/", HERE / "wrk/get.lua", args.seconds, conns, {"PATH_TO_GET": "/"})
            results[f"ceiling_{conns}"] = {**r, "connections": conns}
        bare.stop()
        bare = None

        server = srv = Server(args.workers, work, args.server_arg)
        t = time.monotonic()
        asyncio.run(catalog_gen.load(srv.env["PG_DSN"], srv.env["REDIS_URL"], args.products))
        results["load_s"] = time.monotonic() - t
        print(f"catalog of {args.products} loaded in {results['load_s']:.0f}s", file=sys.stderr)

        z = catalog_gen.ZipfProducts(args.products)
        hidden = asyncio.run(drafts(srv.env["PG_DSN"]))
        pages = _write(work / "pages.txt", page_paths(z, PATHS_PER_FILE, seed=1, hidden=hidden))
        checks = _write(work / "inventory.txt", inventory_paths(z, PATHS_PER_FILE, seed=2))
        paths_lua = HERE / "wrk/paths.lua"
        # warm: every worker builds each page of the mix once (one statement and an MGET);
        # the figure is the steady state a running store is in
        wrk(srv.url, paths_lua, args.warmup, 256, {"PATHS": str(pages)})
        r = wrk(srv.url, paths_lua, args.seconds, 256, {"PATHS": str(pages)})
        results["page"] = {**r, "connections": 256}
        print(f"page: {r['rps']:.0f} req/s, p99 {r['p99']}", file=sys.stderr)
        hot = _write(work / "hot.txt", [f"/products/{_most_popular(z, hidden)}"])
        r = wrk(srv.url, paths_lua, args.seconds, 256, {"PATHS": str(hot)})
        results["page_hit"] = {**r, "connections": 256}
        print(f"page_hit: {r['rps']:.0f} req/s, p99 {r['p99']}", file=sys.stderr)
        for conns in (256, 64):
            r = wrk(srv.url, paths_lua, args.seconds, conns, {"PATHS": str(checks)})
            results[f"inventory_{conns}"] = {**r, "connections": conns}
            print(f"inventory@{conns}: {r['rps']:.0f} req/s, p99 {r['p99']}", file=sys.stderr)

        popular = [pid for pid in z.order[:40] if pid not in hidden][:20]  # cached everywhere
        reads: dict[str, Any] = {}

        def background_reads() -> None:
            reads.update(
                wrk(srv.url, paths_lua, args.seconds, 64, {"PATHS": str(pages)}),
            )

        reader = threading.Thread(target=background_reads)
        reader.start()
        time.sleep(min(1.0, args.seconds / 4))
        results["freshness"] = freshness(srv.url, srv.env["JWT_SECRET"], popular, args.changes)
        reader.join()
        results["freshness"]["reads_meanwhile_rps"] = reads.get("rps")
        print(f"freshness: p99 {results['freshness']['p99_ms']:.1f} ms", file=sys.stderr)

        table = _table(results)
        save_report(
            "catalog",
            f"# Catalog load run\n\n{args.workers} workers, {args.products} products, "
            f"{args.seconds} s per phase\n\n{table}",
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
