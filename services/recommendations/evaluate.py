"""Offline evaluation on the SYNTHETIC shopper population (devtools.shoppers_gen), with a
time-based split: every model sees the events before ``t_test`` only and is judged on what
each shopper added to a cart or ordered after it (items they had not already bought).

    python -m services.recommendations evaluate --users 20000 --products 5000 \
        --out docs/recommendations
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from devtools import shoppers_gen
from nexuscart.domain import recs as rules
from services.recommendations import model as m

K = 10
METHODS = ("popularity", "co-visitation", "ALS", "LightFM (WARP)", "ranked blend")


def catalog_of(items: shoppers_gen.Items) -> m.Catalog:
    leaf_ids, leaf = np.unique(items.leaf, return_inverse=True)
    _, dept = np.unique(items.department, return_inverse=True)
    del leaf_ids
    return m.Catalog(
        leaf=leaf.astype(np.int64),
        dept=dept.astype(np.int64),
        log_price=np.log(items.price_minor.astype(np.float64)),
        active=items.active.copy(),
    )


def events_of(ev: shoppers_gen.Interactions) -> m.Events:
    return m.Events(ev.user, ev.item, ev.ts, ev.kind)


def lightfm_lists(
    s: m.Signals, users: m.I64, cfg: m.Config, n: int
) -> tuple[dict[int, list[int]], float]:
    """LightFM (lightfm-next, WARP loss, no side features) on the same events: its lists and
    its fit time."""
    from lightfm import LightFM

    t0 = time.perf_counter()
    lf = LightFM(no_components=cfg.factors, loss="warp", random_state=cfg.seed)
    inter = s.user_items.tocoo()
    lf.fit(inter, epochs=15, num_threads=cfg.threads)
    fit_s = time.perf_counter() - t0
    out: dict[int, list[int]] = {}
    items = np.arange(s.n_items, dtype=np.int32)
    for u in users.tolist():
        sc = lf.predict(u, items, num_threads=cfg.threads)
        top = np.argpartition(-sc, n)[:n]
        out[u] = top[np.argsort(-sc[top])].tolist()
    return out, fit_s


def evaluate(
    n_users: int, n_products: int, seed: int, eval_users: int, cfg: m.Config,
    with_lightfm: bool = True,
) -> dict[str, Any]:  # fmt: skip
    t0 = time.perf_counter()
    pop = shoppers_gen.generate(n_users, n_products, seed=seed)
    gen_s = time.perf_counter() - t0
    cat = catalog_of(pop.items)
    ev = events_of(pop.events)
    horizon = pop.days * shoppers_gen.DAY_S
    t_test = int(horizon * 0.85)
    model = m.train(ev, cat, n_users, t_test, label_days=7, cfg=cfg)
    s = model.signals
    test = ev.between(t_test, horizon)
    bought = m.bought_by_user(s.bought, cat.n)
    targets: dict[int, set[int]] = {}
    for u, i, k in zip(test.user.tolist(), test.item.tolist(), test.kind.tolist(), strict=True):
        if k >= 1 and i not in bought.get(u, ()):
            targets.setdefault(u, set()).add(i)
    warm = [u for u in sorted(targets) if s.user_total[u] > 0]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(warm, min(eval_users, len(warm)), replace=False))
    users = chosen.astype(np.int64)
    popular = s.popular.tolist()
    lists: dict[str, dict[int, list[int]]] = {}
    lists["popularity"] = {u: m.fill([], popular, bought.get(u, set()), K) for u in users.tolist()}
    cs = m.covis_scores(s, users)
    r, c, _ = m.top_per_row(cs, K * 3)
    cov: dict[int, list[int]] = {}
    for row, col in zip(r.tolist(), c.tolist(), strict=True):
        cov.setdefault(int(users[row]), []).append(col)
    lists["co-visitation"] = {
        u: m.fill(cov.get(u, []), popular, bought.get(u, set()), K) for u in users.tolist()
    }
    ai, _ = m.als_top(s, users, K * 3)
    lists["ALS"] = {
        u: m.fill(ai[n].tolist(), popular, bought.get(u, set()), K)
        for n, u in enumerate(users.tolist())
    }
    lightfm_fit_s = None
    if with_lightfm:
        lfl, lightfm_fit_s = lightfm_lists(s, users, cfg, K * 3)
        lists["LightFM (WARP)"] = {
            u: m.fill(lfl[u], popular, bought.get(u, set()), K) for u in users.tolist()
        }
    t1 = time.perf_counter()
    cand = m.candidates(s, cat, users, cfg)
    score = m.rank(model.ranker, cand)
    blended = m.top_k_by_user(cand.user, cand.item, score, K)
    serve_s = time.perf_counter() - t1
    lists["ranked blend"] = {
        u: m.fill(blended.get(u, []), popular, bought.get(u, set()), K) for u in users.tolist()
    }
    results: dict[str, dict[str, float]] = {}
    for name, per_user in lists.items():
        rec = [rules.recall_at(K, per_user[u], targets[u]) for u in per_user]
        nd = [rules.ndcg_binary_at(K, per_user[u], targets[u]) for u in per_user]
        results[name] = {
            "recall@10": float(np.mean(rec)),
            "ndcg@10": float(np.mean(nd)),
            "coverage": rules.coverage(per_user.values(), int(cat.active.sum())),
        }
    counts = np.bincount(ev.kind, minlength=3)
    return {
        "synthetic": True,
        "population": {
            "users": n_users, "products": n_products, "seed": seed, "days": pop.days,
            "events": len(ev), "views": int(counts[0]), "carts": int(counts[1]),
            "orders": int(counts[2]),
        },
        "split": {
            "test_from_day": t_test / shoppers_gen.DAY_S, "label_days": 7,
            "eval_users": len(users), "warm_users_with_targets": len(warm),
            "targets_per_user": float(np.mean([len(targets[u]) for u in users.tolist()])),
        },
        "results": results,
        "holdout": model.metrics,
        "timings_s": {
            "generate": gen_s, **model.timer.stages, "lightfm_fit": lightfm_fit_s,
            "blend_serve_eval_users": serve_s,
        },
        "candidates_per_user": len(cand) / max(1, len(users)),
        "config": {k: v for k, v in vars(cfg).items()},
    }  # fmt: skip


def write_report(res: dict[str, Any], out: Path, command: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "offline-eval.json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    names = [n for n in METHODS if n in res["results"]]
    r = res["results"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, metric in zip(axes, ("ndcg@10", "recall@10", "coverage"), strict=True):
        vals = [r[n][metric] for n in names]
        ax.bar(
            range(len(names)), vals, color=["#999", "#6a9", "#69c", "#c96", "#c33"][: len(names)]
        )
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_title(metric)
        for x, v in enumerate(vals):
            ax.text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
    p = res["population"]
    fig.suptitle(
        f"SYNTHETIC shoppers ({p['users']:,} users, {p['products']:,} products, "
        f"{p['events']:,} events), time-based split"
    )
    fig.tight_layout()
    fig.savefig(out / "offline-eval.png", dpi=90)
    plt.close(fig)
    base = r["popularity"]["ndcg@10"]
    lines = [
        "# Offline evaluation (SYNTHETIC data)",
        "",
        f"Produced by `{command}` (`scripts/bench recs-eval`). The shoppers are generated by",
        "`devtools/shoppers_gen.py` (the latent model is in docs/recommendations.md): these",
        "figures measure the models on a synthetic population, not on real shoppers.",
        "",
        f"Population: {p['users']:,} users, {p['products']:,} products, {p['events']:,} events "
        f"({p['views']:,} views, {p['carts']:,} add-to-carts, {p['orders']:,} orders) over "
        f"{p['days']} days, seed {p['seed']}.",
        f"Split: models see days 0-{res['split']['test_from_day']:.1f}; the ranker learns from "
        f"the last {res['split']['label_days']} of those days; judged on "
        f"{res['split']['eval_users']:,} shoppers (of "
        f"{res['split']['warm_users_with_targets']:,} with history and a target), "
        f"{res['split']['targets_per_user']:.2f} targets each: the items they added to a cart or "
        "ordered after the split, not bought before it.",
        "",
        "| model | recall@10 | NDCG@10 | NDCG@10 vs popularity | catalogue coverage |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        x = r[n]
        rel = (x["ndcg@10"] / base - 1) * 100 if base else float("nan")
        lines.append(
            f"| {n} | {x['recall@10']:.4f} | {x['ndcg@10']:.4f} | {rel:+.0f}% | "
            f"{x['coverage']:.3f} |"
        )
    t = res["timings_s"]
    lines += [
        "",
        "Lists are filled up to 10 with the most popular items when a model has fewer "
        "(co-visitation for a shopper whose recent items have no neighbours).",
        "",
        "Training stages (s, summed over the two fits: signals before the label window, then "
        "on everything): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items() if v is not None),
        "",
        "![offline evaluation](offline-eval.png)",
        "",
    ]
    (out / "offline-eval.md").write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None, run: Callable[..., dict[str, Any]] = evaluate) -> int:
    ap = argparse.ArgumentParser(prog="python -m services.recommendations evaluate")
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--products", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--eval-users", type=int, default=5_000)
    ap.add_argument("--no-lightfm", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="write the report here")
    args = ap.parse_args(argv)
    res = run(args.users, args.products, args.seed, args.eval_users, m.Config(),
              with_lightfm=not args.no_lightfm)  # fmt: skip
    for name, x in res["results"].items():
        sys.stdout.write(
            f"{name:16s} recall@10={x['recall@10']:.4f} ndcg@10={x['ndcg@10']:.4f} "
            f"coverage={x['coverage']:.3f}\n"
        )
    sys.stdout.write(json.dumps(res["timings_s"]) + "\n")
    if args.out:
        cmd = "python -m services.recommendations evaluate " + " ".join(
            a for a in (argv if argv is not None else sys.argv[2:])
        )
        write_report(res, args.out, cmd.strip())
    return 0
