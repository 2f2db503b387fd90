"""`python -m services.recommendations train`: fit the model, time every stage, save it as a
new version in the registry (and, with ``--promote``, make it active).

The events come from the SYNTHETIC shopper population (``--synthetic N``: about N
interactions) or from the live store (``--from-redis``: the signals the service logged in
``recs:log`` and the catalog in PostgreSQL; docs/recommendations.md).

    python -m services.recommendations train --synthetic 1000000 --products 20000
    python -m services.recommendations train --from-redis --promote

With ``--from-redis``, a store that holds too few signals to learn from is no failure: the
command says why on stderr and exits with NOTHING_TO_TRAIN. ``--json`` ends the output with
one JSON line, ``{"version": ..., "metrics": {...}}`` or ``{"skipped": "<why>"}``: what the
service's schedule reads (schedule.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from nexuscart import config
from nexuscart.adapters import postgres, redis_conn
from nexuscart.adapters.catalog_repo import CatalogRepo
from nexuscart.adapters.recs_registry import ModelRegistry
from services.recommendations import live
from services.recommendations import model as m

LABEL_DAYS = 7
NOTHING_TO_TRAIN: Final = 3  # the exit status when the live store holds too few signals
# shoppers who carted or ordered in the label window, at least: the ranker learns from four
# fifths of them (a fifth is held out), and with none left it has nothing to learn
MIN_LABEL_SHOPPERS: Final = 10


def fit(
    interactions: int, products: int, seed: int, cfg: m.Config
) -> tuple[m.Model, m.Catalog, m.I64, dict[str, Any]]:
    # development tools (not in the runtime image): SYNTHETIC training only
    from devtools import shoppers_gen
    from services.recommendations import evaluate

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
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", type=int, metavar="INTERACTIONS")
    src.add_argument("--from-redis", action="store_true", help="recs:log and the catalog")
    ap.add_argument("--products", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-save", action="store_true", help="time the training only")
    ap.add_argument("--promote", action="store_true", help="make the new version active")
    ap.add_argument("--json", action="store_true", help="end with a JSON line (--from-redis)")
    args = ap.parse_args(argv)
    cfg = m.Config(threads=args.threads)
    out = sys.stdout
    if args.from_redis:
        return asyncio.run(train_live(cfg, args.promote, args.no_save, args.json))
    model, cat, product_ids, info = fit(args.synthetic, args.products, args.seed, cfg)
    out.write(
        f"SYNTHETIC {info['interactions']:,} interactions, {info['users']:,} users, "
        f"{info['products']:,} products (generated in {info['generate_s']:.1f} s, not counted)\n"
    )
    report(model, info["train_s"])
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


def report(model: m.Model, train_s: float) -> None:
    out = sys.stdout
    out.write(f"  {'stage':14s} {'wall s':>8s} {'cpu s':>8s}\n")
    for stage, s in model.timer.stages.items():
        out.write(f"  {stage:14s} {s:8.2f} {model.timer.cpu[stage]:8.2f}\n")
    cpu = sum(model.timer.cpu.values())
    out.write(f"  {'total':14s} {train_s:8.2f} {cpu:8.2f}\n")
    out.write(f"held-out: {json.dumps(model.metrics)}\n")


def _label_shoppers(data: live.LiveData, label_days: float) -> int:
    window = data.events.between(int(data.t_end - label_days * m.DAY_S), data.t_end)
    return len(m.unique(window.user[window.kind >= 1]))


async def train_live(cfg: m.Config, promote: bool, no_save: bool, as_json: bool = False) -> int:
    """Train on recs:log and the catalog; the ranker's label window is the last fifth of the
    logged time, at most 7 days."""
    settings = config.load()
    redis = redis_conn.connect(settings.redis, timeout_s=30)
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> Any:
        return pool

    try:
        try:
            data = await live.load(redis, CatalogRepo(pg))
            label_days = min(LABEL_DAYS, data.t_end / 5 / 86_400)
            if (n := _label_shoppers(data, label_days)) < MIN_LABEL_SHOPPERS:
                raise LookupError(
                    f"{n} shoppers carted or ordered in the label window, "
                    f"fewer than {MIN_LABEL_SHOPPERS}"
                )
        except LookupError as exc:
            sys.stderr.write(f"nothing to train: {exc}\n")
            if as_json:
                sys.stdout.write(json.dumps({"skipped": str(exc)}) + "\n")
            return NOTHING_TO_TRAIN
        t1 = time.perf_counter()
        model = await asyncio.to_thread(
            m.train, data.events, data.catalog, len(data.user_ids), data.t_end, label_days, cfg
        )
        train_s = time.perf_counter() - t1
        sys.stdout.write(
            f"recs:log {len(data.events):,} signals, {len(data.user_ids):,} shoppers, "
            f"{len(data.product_ids):,} products\n"
        )
        report(model, train_s)
        if no_save:
            return 0
        info = {"source": "recs:log", "interactions": len(data.events),
                "users": len(data.user_ids), "products": len(data.product_ids)}  # fmt: skip
        meta = {"metrics": model.metrics, "timings_s": model.timer.stages, "data": info}
        arrays = m.to_arrays(model, data.catalog, data.product_ids, data.user_ids)
        reg = ModelRegistry(settings.recs.model_dir, redis)
        version = reg.save(arrays, m.ranker_bytes(model.ranker), meta)
        await reg.register(version)
        before = await reg.promote(version) if promote else None
        sys.stdout.write(
            f"saved {version}" + (f", promoted (was {before})" if promote else "") + "\n"
        )
        if as_json:
            sys.stdout.write(json.dumps({"version": version, "metrics": model.metrics}) + "\n")
        return 0
    finally:
        await pool.close()
        await redis.aclose()
