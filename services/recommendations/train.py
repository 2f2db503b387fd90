"""`python -m services.recommendations train`: fit the model, time every stage, save it as a
new version in the registry (and, with ``--promote``, make it active).

The events come from the SYNTHETIC shopper population (``--synthetic N``: about N
interactions); reading the live signals' log is not built yet (docs/recommendations.md).

    python -m services.recommendations train --synthetic 1000000 --products 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from devtools import shoppers_gen
from nexuscart import config
from nexuscart.adapters import redis_conn
from nexuscart.adapters.recs_registry import ModelRegistry
from services.recommendations import evaluate
from services.recommendations import model as m

LABEL_DAYS = 7


def fit(
    interactions: int, products: int, seed: int, cfg: m.Config
) -> tuple[m.Model, m.Catalog, m.I64, dict[str, Any]]:
    t0 = time.perf_counter()
    users = shoppers_gen.users_for(interactions)
    pop = shoppers_gen.generate(users, products, seed=seed)
    gen_s = time.perf_counter() - t0
    cat = evaluate.catalog_of(pop.items)
    ev = evaluate.events_of(pop.events)
    t_end = pop.days * shoppers_gen.DAY_S
    t1 = time.perf_counter()
    model = m.train(ev, cat, users, t_end, LABEL_DAYS, cfg)
    info = {
        "source": "synthetic", "users": users, "products": products, "seed": seed,
        "interactions": len(ev), "generate_s": gen_s, "train_s": time.perf_counter() - t1,
    }  # fmt: skip
    return model, cat, pop.items.product_id, info


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m services.recommendations train")
    ap.add_argument("--synthetic", type=int, required=True, metavar="INTERACTIONS")
    ap.add_argument("--products", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-save", action="store_true", help="time the training only")
    ap.add_argument("--promote", action="store_true", help="make the new version active")
    args = ap.parse_args(argv)
    cfg = m.Config(threads=args.threads)
    model, cat, product_ids, info = fit(args.synthetic, args.products, args.seed, cfg)
    out = sys.stdout
    out.write(
        f"SYNTHETIC {info['interactions']:,} interactions, {info['users']:,} users, "
        f"{info['products']:,} products (generated in {info['generate_s']:.1f} s, not counted)\n"
    )
    out.write(f"  {'stage':14s} {'wall s':>8s} {'cpu s':>8s}\n")
    for stage, s in model.timer.stages.items():
        out.write(f"  {stage:14s} {s:8.2f} {model.timer.cpu[stage]:8.2f}\n")
    cpu = sum(model.timer.cpu.values())
    out.write(f"  {'total':14s} {info['train_s']:8.2f} {cpu:8.2f}\n")
    out.write(f"held-out: {json.dumps(model.metrics)}\n")
    if args.no_save:
        return 0
    meta = {"metrics": model.metrics, "timings_s": model.timer.stages, "data": info,
            "config": vars(cfg)}  # fmt: skip
    t2 = time.perf_counter()
    # SYNTHETIC shopper n is user id n + 1 (ids the demo can sign in as are not among them)
    user_ids = np.arange(1, info["users"] + 1, dtype=np.int64)
    arrays = m.to_arrays(model, cat, product_ids, user_ids)
    if args.promote:
        return asyncio.run(_save_and_promote(arrays, model, meta, t2))
    root = os.environ.get("RECS_MODEL_DIR") or config.RecsSettings().model_dir
    version = ModelRegistry(root).save(arrays, m.ranker_bytes(model.ranker), meta)
    out.write(f"saved {version} in {time.perf_counter() - t2:.2f} s (not promoted)\n")
    return 0


async def _save_and_promote(
    arrays: dict[str, np.typing.NDArray[Any]], model: m.Model, meta: dict[str, Any], t2: float
) -> int:
    settings = config.load()
    redis = redis_conn.connect(settings.redis)
    try:
        reg = ModelRegistry(settings.recs.model_dir, redis)
        version = reg.save(arrays, m.ranker_bytes(model.ranker), meta)
        before = await reg.promote(version)
    finally:
        await redis.aclose()
    sys.stdout.write(
        f"saved and promoted {version} in {time.perf_counter() - t2:.2f} s (was {before})\n"
    )
    return 0
