"""Recommendations load run against the configuration ``scripts/server`` ships, on loopback:
the generator's catalog (default 100,000 products), a SYNTHETIC model trained and promoted
before the edge starts, signed-in shoppers (default 100,000: the model knows the first
``users_for(--interactions)`` of them, the rest are new shoppers on the cold-start path).

Phases (each bounded in time, 127.0.0.1 only, wrk with --connections, 256 by default):
  1. ceiling  wrk on a bare Granian RSGI JSON endpoint (loadtest/bare_app.py)
  2. me       GET /recommendations/me?k=10, every request another shopper (their tokens in
              turn, each shopper's answer cached per worker for 1 s)
  3. explain  the same with explain=1 (TreeSHAP contributions per item)
  4. similar  GET /products/{id}/similar over a Zipf product mix

Usage: scripts/bench recs [--workers 2] [--seconds 20] [--products 100000] [--users 100000]
       [--settle 60]
Writes loadtest/reports/recs-<time>.md and .json, and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import numpy as np
import redis.asyncio as aioredis

from devtools import catalog_gen, devstack
from loadtest.storm import HERE, ROOT, Server, phase_table, save_report, workdir, wrk
from nexuscart import auth
from nexuscart.adapters.recs_registry import ModelRegistry
from nexuscart.config import RecsSettings
from services.recommendations import model as m
from services.recommendations import train


def promote_model(redis_url: str, interactions: int, products: int) -> dict[str, Any]:
    t0 = time.monotonic()
    model, cat, product_ids, info = train.fit(interactions, products, 7, m.Config())
    arrays = m.to_arrays(model, cat, product_ids, np.arange(1, info["users"] + 1))

    async def save() -> str:
        client = aioredis.Redis.from_url(redis_url)
        try:
            reg = ModelRegistry(ROOT / RecsSettings().model_dir, client)
            version = reg.save(arrays, m.ranker_bytes(model.ranker), {"metrics": model.metrics})
            await reg.promote(version)
            return version
        finally:
            await client.aclose()

    version = asyncio.run(save())
    return {"version": version, "known_users": info["users"], "train_s": time.monotonic() - t0}


def _table(results: dict[str, Any]) -> str:
    phases = [(n, "ceiling") for n in ("ceiling", "me", "explain", "similar")]
    return "\n".join(phase_table(results, phases))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--products", type=int, default=catalog_gen.DEFAULT_PRODUCTS)
    ap.add_argument("--users", type=int, default=100_000, help="shoppers whose tokens are sent")
    ap.add_argument("--interactions", type=int, default=1_000_000, help="SYNTHETIC, to train")
    ap.add_argument("--server-arg", action="append", default=[])
    ap.add_argument(
        "--settle", type=float, default=60.0,
        help="seconds between the edge's start and the first phase: each worker loads the "
        "model, its search index and its availability snapshot, which must first catch up "
        "with the 100k+ announcements of the products just loaded (until then the route "
        "answers 503: 44-47%% non-2xx with 10 s)",
    )  # fmt: skip
    args = ap.parse_args()

    work = workdir("nexuscart-bench-recs-")
    server: Server | None = None
    bare: devstack.GranianServer | None = None
    try:
        # first start: the stack; load the catalog and promote a model; second start: the
        # service backfills the products and the workers load the model
        server = Server(args.workers, work, args.server_arg)
        asyncio.run(catalog_gen.load(server.env["PG_DSN"], server.env["REDIS_URL"], args.products))
        trained = promote_model(server.env["REDIS_URL"], args.interactions, args.products)
        print(f"model {trained}", file=sys.stderr)
        server.stop()
        server = srv = Server(args.workers, work, args.server_arg)
        time.sleep(args.settle)
        results: dict[str, Any] = {
            "workers": args.workers, "seconds": args.seconds, "connections": args.connections,
            "products": args.products, "users": args.users, "model": trained, "synthetic": True,
        }  # fmt: skip
        tokens = work / "tokens.txt"
        secret = srv.env["JWT_SECRET"]
        tokens.write_text(
            "\n".join(auth.issue(secret, u, roles=("customer",)) for u in range(1, args.users + 1))
            + "\n"
        )
        bare = devstack.GranianServer(
            "loadtest.bare_app:app", {}, workers=args.workers, cwd=ROOT, ready_path="/"
        )
        results["ceiling"] = wrk(
            f"{bare.url}/", HERE / "wrk/get.lua", args.seconds, args.connections,
            {"PATH_TO_GET": "/"},
        )  # fmt: skip
        bare.stop()
        bare = None
        for phase, path in (
            ("me", "/recommendations/me?k=10"),
            ("explain", "/recommendations/me?k=10&explain=1"),
        ):
            results[phase] = wrk(
                srv.url, HERE / "wrk/authed_get.lua", args.seconds, args.connections,
                {"PATH_TO_GET": path, "TOKENS": str(tokens)},
            )  # fmt: skip
            print(f"{phase}: {results[phase]['rps']:.0f} req/s", file=sys.stderr)
        paths = work / "similar.txt"
        pids = catalog_gen.ZipfProducts(args.products).sample(20_000)
        paths.write_text("".join(f"/products/{p}/similar?k=10\n" for p in pids))
        results["similar"] = wrk(
            srv.url, HERE / "wrk/paths.lua", args.seconds, args.connections,
            {"PATHS": str(paths)},
        )  # fmt: skip
        table = _table(results)
        save_report(
            "recs",
            f"# Recommendations load run (SYNTHETIC model)\n\n{args.workers} workers, "
            f"{args.products} products, {args.users} shoppers ({trained['known_users']} known "
            f"to the model), {args.seconds} s per phase, {args.connections} connections\n\n"
            f"{table}",
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
