"""Search load run against the configuration ``scripts/server`` ships, on loopback, with
the generator's catalog (default 100,000 products) loaded before the edge starts (each
worker builds its index from the catalog at start).

Phases (each bounded in time, 127.0.0.1 only, wrk with --connections, 256 by default):
  1. ceiling   wrk on a bare Granian RSGI JSON endpoint (loadtest/bare_app.py): the most
               this machine serves with the same wrk, the figure the others are compared to
  2. mix       GET /search over a realistic query mix: words (a third with typos), filters,
               category browsing with sorts, every answer with its facets; popular queries
               repeat (Zipf over --distinct queries), as a store's search box sees them;
               measured after --warmup seconds of the same mix (the answer caches warm)
  3. cold      the same shapes, every request a different query (no answer cache hit): what
               the engine itself sustains
  4. freshness --changes price changes (PATCH of a variant through the API, as a seller's
               tool would), each timed from the write's answer until 10 searches in a row
               (each on a new connection, so both workers answer) show the new price

Usage: scripts/bench search [--workers 2] [--seconds 20] [--products 100000]
Writes loadtest/reports/search-<time>.md and .json, and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx

from devtools import catalog_gen, devstack
from loadtest.search_engines import load_judged, parents
from loadtest.storm import HERE, ROOT, Server, phase_table, save_report, workdir, wrk
from nexuscart import auth
from nexuscart.domain import search as rules


def query_paths(n: int, distinct: int, seed: int = 5, cold: bool = False) -> list[str]:
    """``n`` search paths: Zipf over ``distinct`` queries (or all different when ``cold``)."""
    rng = random.Random(seed)
    judged = load_judged()
    tree = parents()
    mids = sorted(c for c, p in tree.items() if p is not None and tree.get(p) is None)
    shapes: list[list[tuple[str, str]]] = []
    for i in range(distinct if not cold else n):
        j = judged[i % len(judged)]
        kind = i % 5
        params: list[tuple[str, str]] = [("q", j.q)]
        if kind == 1:
            params += [("in_stock", "true"), ("price_max", str(rng.choice([5000, 20000, 100000])))]
        elif kind == 2:
            params = [("category", str(rng.choice(mids))), ("sort", rng.choice(rules.SORTS[1:]))]
        elif kind == 3:
            params += [("sort", "price_asc"), ("limit", "24")]
        elif kind == 4 and i % 10 == 4:
            params = [("q", j.q.split()[0])]  # a single word, as typed in a search box
        if cold:
            params.append(("price_min", str(i)))  # unique: no cached answer
            # and a valid range (a price_min above price_max is a 400, not a search)
            params = [(k, str(max(int(v), i)) if k == "price_max" else v) for k, v in params]
        shapes.append(params)
    if cold:
        return ["/search?" + urlencode(p) for p in shapes]
    weights = list(itertools.accumulate(catalog_gen.zipf_weights(len(shapes))))
    picks = rng.choices(range(len(shapes)), cum_weights=weights, k=n)
    return ["/search?" + urlencode(shapes[k]) for k in picks]


def wait_for_index(url: str, products: int, within_s: float = 600) -> float:
    """Seconds until every worker answers /search with the whole catalog indexed."""
    t0 = time.monotonic()
    ok = 0
    while ok < 20:
        try:
            r = httpx.get(f"{url}/search", params={"limit": 1}, timeout=10)
            full = r.status_code == 200 and r.json()["total"] >= products * 0.9
        except httpx.HTTPError:
            full = False
        ok = ok + 1 if full else 0
        if time.monotonic() - t0 > within_s:
            sys.exit("the search index was not built in time")
        if not full:
            time.sleep(0.5)
    return time.monotonic() - t0


def freshness(base: str, secret: str, changes: int) -> dict[str, Any]:
    token = auth.issue(secret, 1, roles=("admin",))
    lags: list[float] = []
    with httpx.Client(base_url=base, timeout=10) as http:
        for pid in range(1, changes * 20):
            if len(lags) == changes:
                break
            page = http.get(f"/products/{pid}")
            if page.status_code != 200:
                continue  # a draft
            product = page.json()
            q: dict[str, str | int] = {
                "q": " ".join(product["title"].split()[: rules.Q_MAX_TERMS]),
                "limit": 50,
            }
            found = httpx.get(f"{base}/search", params=q).json().get("items", [])
            if not any(h["product_id"] == pid for h in found):
                continue  # its title's words rank 50 others first: its change could not show
            variant = min(product["variants"], key=lambda v: v["price_minor"])
            price = max(0, variant["price_minor"] - 1)  # still the cheapest: price_min moves
            r = http.patch(
                f"/products/{pid}/variants/{variant['sku']}",
                json={"price_minor": price},
                headers={
                    "authorization": f"Bearer {token}",
                    "if-match": page.headers["etag"],
                    "idempotency-key": uuid.uuid4().hex,
                },
            )
            r.raise_for_status()
            written = time.perf_counter()
            first_seen: float | None = None
            streak = 0
            while streak < 10:
                if time.perf_counter() > written + 30:
                    sys.exit(f"product {pid}: the new price was not searchable within 30 s")
                got = httpx.get(f"{base}/search", params=q, headers={"connection": "close"})
                t = time.perf_counter()  # answered by now: an upper bound of the lag
                hit = [h for h in got.json().get("items", []) if h["product_id"] == pid]
                if hit and hit[0]["price_min"] == price:
                    first_seen = t if streak == 0 else first_seen
                    streak += 1
                else:
                    streak = 0
            assert first_seen is not None
            lags.append(max(0.0, first_seen - written))
    lags.sort()
    return {
        "changes": len(lags),
        "p50_ms": 1000 * statistics.median(lags) if lags else None,
        "p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))] if lags else None,
        "max_ms": 1000 * lags[-1] if lags else None,
    }


def _table(results: dict[str, Any]) -> str:
    out = phase_table(results, [(n, "ceiling") for n in ("ceiling", "mix", "cold")])
    f = results.get("freshness")
    if f and f["changes"]:
        out.append(
            f"\nfreshness: {f['changes']} price changes searchable after p50 "
            f"{f['p50_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms, max {f['max_ms']:.0f} ms"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--products", type=int, default=catalog_gen.DEFAULT_PRODUCTS)
    ap.add_argument("--distinct", type=int, default=2000, help="distinct queries in the mix")
    ap.add_argument("--changes", type=int, default=50, help="price changes timed (freshness)")
    ap.add_argument("--warmup", type=int, default=10, help="seconds of the mix before measuring")
    ap.add_argument("--server-arg", action="append", default=[])
    args = ap.parse_args()

    work = workdir("nexuscart-bench-search-")
    server: Server | None = None
    bare: devstack.GranianServer | None = None
    try:
        # first start: the stack; load the catalog; second start: the workers index it
        server = Server(args.workers, work, args.server_arg)
        t = time.monotonic()
        asyncio.run(catalog_gen.load(server.env["PG_DSN"], server.env["REDIS_URL"], args.products))
        print(f"catalog of {args.products} loaded in {time.monotonic() - t:.0f}s", file=sys.stderr)
        server.stop()
        server = srv = Server(args.workers, work, args.server_arg)
        results: dict[str, Any] = {
            "workers": args.workers,
            "seconds": args.seconds,
            "connections": args.connections,
            "products": args.products,
        }
        results["index_ready_s"] = wait_for_index(srv.url, args.products)
        print(f"index ready after {results['index_ready_s']:.0f}s", file=sys.stderr)

        bare = devstack.GranianServer(
            "loadtest.bare_app:app", {}, workers=args.workers, cwd=ROOT, ready_path="/"
        )
        results["ceiling"] = wrk(
            f"{bare.url}/", HERE / "wrk/get.lua", args.seconds, args.connections,
            {"PATH_TO_GET": "/"},
        )  # fmt: skip
        bare.stop()
        bare = None
        for phase, cold in (("mix", False), ("cold", True)):
            paths = work / f"{phase}.txt"
            paths.write_text("\n".join(query_paths(20_000, args.distinct, cold=cold)) + "\n")
            if not cold and args.warmup:
                # the workers' answer caches start empty; a store's are warm: measure that
                wrk(srv.url, HERE / "wrk/paths.lua", args.warmup, args.connections,
                    {"PATHS": str(paths)})  # fmt: skip
            results[phase] = wrk(
                srv.url, HERE / "wrk/paths.lua", args.seconds, args.connections,
                {"PATHS": str(paths)},
            )  # fmt: skip
            print(f"{phase}: {results[phase]['rps']:.0f} req/s", file=sys.stderr)
        results["freshness"] = freshness(srv.url, srv.env["JWT_SECRET"], args.changes)
        print(f"freshness: {results['freshness']}", file=sys.stderr)
        table = _table(results)
        save_report(
            "search",
            f"# Search load run\n\n{args.workers} workers, {args.products} products, "
            f"{args.seconds} s per phase, {args.connections} connections\n\n{table}",
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
