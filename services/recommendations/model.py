"""The recommendation model, offline: signals fitted on the events up to a time
(popularity, co-visitation, ALS, each shopper's affinities), candidates from them, the
features of ``domain.recs.FEATURES`` and the XGBoost learning-to-rank blend over them.

Everything is vectorised over numpy/scipy arrays keyed by ``user * n_items + item`` (sorted
keys and ``searchsorted`` instead of dicts): a million events train in tens of seconds.
"""

from __future__ import annotations

import os

# OpenMP threads (XGBoost, implicit) that wait by spinning burn the cores the rest of the
# stack needs; on this shared 2-core box a spinning ranker took 4-10x longer (measured)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import xgboost as xgb
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from nexuscart.domain import recs as rules

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
KIND_W: Final = np.array(rules.KIND_WEIGHT, dtype=np.float64)
DAY_S: Final = 86_400.0


@dataclass(frozen=True)
class Config:
    factors: int = 64
    als_iterations: int = 12
    als_regularization: float = 0.05
    als_alpha: float = 2.0
    als_refit_iterations: int = 4  # the serving refit starts from the label-window fit
    candidates: int = 50  # per source and shopper
    leaf_candidates: int = 10  # popular items of each of the shopper's top two leaves
    ranker_rounds: int = 120
    ranker_depth: int = 6
    ranker_users: int = 10_000  # label-window shoppers the ranker learns from, at most
    ranker_negatives: int = 40  # unlabelled candidates kept per shopper (sampled)
    threads: int = 2
    seed: int = 7
    serve_top: int = 50  # each known shopper's ranked list kept for serving
    serve_batch: int = 4_096  # shoppers ranked at a time (memory: ~140 candidates each)


@dataclass
class Timer:
    """Wall seconds per stage (summed when a stage runs twice), and the process's CPU
    seconds beside them (on a shared machine the wall time includes waiting for a core)."""

    stages: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - t0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0


@dataclass(frozen=True)
class Catalog:
    """Per item index: leaf category index (compact), department index, log price, live."""

    leaf: I64
    dept: I64
    log_price: F64
    active: npt.NDArray[np.bool_]

    @property
    def n(self) -> int:
        return len(self.leaf)


@dataclass(frozen=True)
class Events:
    user: I64
    item: I64
    ts: I64
    kind: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.user)

    def before(self, t: int) -> Events:
        m = self.ts < t
        return Events(self.user[m], self.item[m], self.ts[m], self.kind[m])

    def between(self, t0: int, t1: int) -> Events:
        m = (self.ts >= t0) & (self.ts < t1)
        return Events(self.user[m], self.item[m], self.ts[m], self.kind[m])


class Pairs:
    """A sparse (key -> value) table over sorted int64 keys."""

    def __init__(self, keys: I64, values: F64) -> None:
        self.keys = keys
        self.values = values

    @classmethod
    def reduce(cls, keys: I64, values: F64, how: str = "sum") -> Pairs:
        uniq, inv = np.unique(keys, return_inverse=True)
        out = np.zeros(len(uniq), dtype=np.float64)
        if how == "sum":
            np.add.at(out, inv, values)
        else:
            out.fill(-np.inf)
            np.maximum.at(out, inv, values)
        return cls(uniq, out)

    def get(self, keys: I64, default: float = 0.0) -> F64:
        if len(self.keys) == 0:
            return np.full(len(keys), default, dtype=np.float64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = self.keys[pos] == keys
        return np.where(hit, self.values[pos], default)


def top_per_row(m: sp.csr_matrix, k: int) -> tuple[I64, I64, F64]:
    """(row, col, value) of each row's ``k`` largest entries, best first (ties: column
    storage order). One stable sort over all entries, no per-row Python loop."""
    m = sp.csr_matrix(m)
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), counts)
    order = np.lexsort((-m.data, rows))
    r = rows[order]
    keep = (np.arange(len(r)) - m.indptr[r]) < k
    o = order[keep]
    return r[keep], m.indices[o].astype(np.int64), m.data[o].astype(np.float64)


def covisitation(ev: Events, n_items: int, top: int = rules.COVIS_TOP) -> sp.csr_matrix:
    """Item x item: weighted counts of two events of one shopper within COVIS_WINDOW_S of
    each other (each event with the next COVIS_LAG), cosine-normalised, ``top`` kept per
    item."""
    order = np.lexsort((ev.ts, ev.user))
    u, i, t, k = ev.user[order], ev.item[order], ev.ts[order], ev.kind[order]
    w = KIND_W[k]
    src: list[I64] = []
    dst: list[I64] = []
    wts: list[F64] = []
    for lag in range(1, rules.COVIS_LAG + 1):
        m = (u[:-lag] == u[lag:]) & (t[lag:] - t[:-lag] <= rules.COVIS_WINDOW_S)
        m &= i[:-lag] != i[lag:]
        a, b = i[:-lag][m], i[lag:][m]
        pw = np.sqrt(w[:-lag][m] * w[lag:][m])
        src += [a, b]
        dst += [b, a]
        wts += [pw, pw]
    if not src:
        return sp.csr_matrix((n_items, n_items), dtype=np.float64)
    c = sp.coo_matrix(
        (np.concatenate(wts), (np.concatenate(src), np.concatenate(dst))),
        shape=(n_items, n_items),
    ).tocsr()
    c.sum_duplicates()
    deg = np.sqrt(np.asarray(c.sum(axis=1)).ravel()) + 1e-9
    c = sp.csr_matrix(sp.diags(1.0 / deg) @ c @ sp.diags(1.0 / deg))
    r, col, v = top_per_row(c, top)
    return sp.csr_matrix((v, (r, col)), shape=(n_items, n_items))


def unique(a: I64) -> I64:
    """Sorted distinct values: a sort and a mask, 40x faster than ``np.unique`` (whose
    hash-based path is slow on int64 keys: 1.27 s against 0.03 s on 900,000 keys)."""
    s = np.sort(a)
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if len(s) else s


def decayed(ts: I64, t_end: int, half_life_s: float) -> F64:
    return np.asarray(0.5 ** ((t_end - ts) / half_life_s), dtype=np.float64)


@dataclass
class Signals:
    """What the events up to ``t_end`` say: the inputs of candidates and features."""

    n_users: int
    n_items: int
    t_end: int
    popularity: F64
    covis: sp.csr_matrix
    user_items: sp.csr_matrix  # confidence for ALS
    recent: sp.csr_matrix  # each shopper's recent items, decayed
    user_factors: F32
    item_factors: F32
    leaf_aff: Pairs  # user * n_leaves + leaf -> weighted events
    leaf_last: Pairs
    dept_aff: Pairs
    item_last: Pairs  # user * n_items + item -> last ts
    item_events: Pairs
    bought: I64  # sorted keys user * n_items + item of orders
    user_total: F64
    user_log_price: F64
    leaf_top: I64  # leaves x leaf_candidates, -1 padded: each leaf's most popular live items
    popular: I64  # the most popular live items, best first


def fit_signals(
    ev: Events, cat: Catalog, n_users: int, t_end: int, cfg: Config, timer: Timer,
    warm: Signals | None = None,
) -> Signals:  # fmt: skip
    """``warm``: an earlier fit over a prefix of these events; ALS starts from its factors
    and runs ``als_refit_iterations`` (the factors move little with a week more data)."""
    from implicit.cpu.als import AlternatingLeastSquares

    n_items = cat.n
    w = KIND_W[ev.kind]
    with timer.stage("popularity"):
        pop = np.bincount(
            ev.item, weights=w * decayed(ev.ts, t_end, rules.POPULARITY_HALF_LIFE_S),
            minlength=n_items,
        ).astype(np.float64)  # fmt: skip
        live_pop = np.where(cat.active, pop, -1.0)
        popular = np.argsort(-live_pop, kind="stable")[: cfg.candidates * 2]
        n_leaves = int(cat.leaf.max()) + 1
        lt = np.full((n_leaves, cfg.leaf_candidates), -1, dtype=np.int64)
        by = np.lexsort((-live_pop, cat.leaf))
        leaf_sorted = cat.leaf[by]
        starts = np.searchsorted(leaf_sorted, np.arange(n_leaves))
        pos = np.arange(len(by)) - starts[leaf_sorted]
        keep = (pos < cfg.leaf_candidates) & cat.active[by]
        lt[leaf_sorted[keep], pos[keep]] = by[keep]
    with timer.stage("covisitation"):
        covis = covisitation(ev, n_items)
    with timer.stage("user_state"):
        ui = sp.csr_matrix((w * cfg.als_alpha, (ev.user, ev.item)), shape=(n_users, n_items))
        ui.sum_duplicates()
        order = np.lexsort((-ev.ts, ev.user))
        us = ev.user[order]
        starts_u = np.searchsorted(us, us)
        nth = np.arange(len(us)) - starts_u
        keep_r = nth < rules.RECENT_ITEMS
        o = order[keep_r]
        recent = sp.csr_matrix(
            (w[o] * decayed(ev.ts[o], t_end, rules.RECENT_HALF_LIFE_S), (ev.user[o], ev.item[o])),
            shape=(n_users, n_items),
        )
        recent.sum_duplicates()
        leaf_of = cat.leaf[ev.item]
        lk = ev.user * n_leaves + leaf_of
        leaf_aff = Pairs.reduce(lk, w)
        leaf_last = Pairs.reduce(lk, ev.ts.astype(np.float64), "max")
        n_depts = int(cat.dept.max()) + 1
        dept_aff = Pairs.reduce(ev.user * n_depts + cat.dept[ev.item], w)
        ik = ev.user * n_items + ev.item
        item_last = Pairs.reduce(ik, ev.ts.astype(np.float64), "max")
        item_events = Pairs.reduce(ik, np.ones(len(ik)))
        bought = unique(ik[ev.kind == 2])
        user_total = np.bincount(ev.user, weights=w, minlength=n_users).astype(np.float64)
        lp = np.bincount(ev.user, weights=w * cat.log_price[ev.item], minlength=n_users)
        mean_lp = float(cat.log_price.mean())
        user_lp = np.where(user_total > 0, lp / np.maximum(user_total, 1e-9), mean_lp)
    with timer.stage("als"), threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(
            factors=cfg.factors, regularization=cfg.als_regularization,
            iterations=cfg.als_iterations if warm is None else cfg.als_refit_iterations,
            num_threads=cfg.threads, random_state=cfg.seed,
        )  # fmt: skip
        if warm is not None:
            als.user_factors = warm.user_factors.copy()
            als.item_factors = warm.item_factors.copy()
        als.fit(ui, show_progress=False)
    return Signals(
        n_users=n_users, n_items=n_items, t_end=t_end, popularity=pop, covis=covis,
        user_items=ui, recent=recent,
        user_factors=np.asarray(als.user_factors, dtype=np.float32),
        item_factors=np.asarray(als.item_factors, dtype=np.float32),
        leaf_aff=leaf_aff, leaf_last=leaf_last, dept_aff=dept_aff, item_last=item_last,
        item_events=item_events, bought=bought, user_total=user_total, user_log_price=user_lp,
        leaf_top=lt, popular=popular,
    )  # fmt: skip


def _group_rank(user: I64, score: F64) -> F64:
    """Rank (0 best) of each score within its user."""
    order = np.lexsort((-score, user))
    us = user[order]
    first = np.searchsorted(us, us)
    rank = np.empty(len(user), dtype=np.float64)
    rank[order] = np.arange(len(us)) - first
    return rank


@dataclass(frozen=True)
class Candidates:
    user: I64
    item: I64
    features: F32  # len x len(FEATURES)

    def __len__(self) -> int:
        return len(self.user)


def covis_scores(s: Signals, users: I64) -> sp.csr_matrix:
    return sp.csr_matrix(s.recent[users] @ s.covis)


def als_top(s: Signals, users: I64, n: int, threads: int = 2) -> tuple[I64, F64]:
    """Each user's ``n`` best items by ALS (users x n ids and scores, best first):
    implicit's C++ top-k over the factors, about 6x numpy's matmul + argpartition."""
    from implicit.cpu.topk import topk

    ids, scores = topk(s.item_factors, s.user_factors[users], n, num_threads=threads)
    return np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def candidates(s: Signals, cat: Catalog, users: I64, cfg: Config) -> Candidates:
    """Union of co-visitation, ALS, the shopper's top-two-leaf bestsellers and the global
    bestsellers; minus items the shopper bought and items not live; with their features."""
    n = s.n_items
    cs = covis_scores(s, users)
    r, c, _ = top_per_row(cs, cfg.candidates)
    parts_u = [users[r]]
    parts_i = [c]
    ai, _ = als_top(s, users, cfg.candidates, cfg.threads)
    parts_u.append(np.repeat(users, ai.shape[1]))
    parts_i.append(ai.ravel())
    n_leaves = s.leaf_top.shape[0]
    lk = s.leaf_aff.keys
    lu, ll = lk // n_leaves, lk % n_leaves
    sel = np.isin(lu, users)
    lu, ll, lv = lu[sel], ll[sel], s.leaf_aff.values[sel]
    lrank = _group_rank(lu, lv)
    top2 = lrank < 2
    tl = s.leaf_top[ll[top2]]
    parts_u.append(np.repeat(lu[top2], tl.shape[1]))
    parts_i.append(tl.ravel())
    pop = s.popular[: cfg.leaf_candidates * 2]
    parts_u.append(np.repeat(users, len(pop)))
    parts_i.append(np.tile(pop, len(users)))
    u = np.concatenate(parts_u)
    i = np.concatenate(parts_i)
    ok = i >= 0
    keys = unique(u[ok] * n + i[ok])
    u, i = keys // n, keys % n
    keep = cat.active[i] & ~np.isin(keys, s.bought, assume_unique=False)
    u, i, keys = u[keep], i[keep], keys[keep]
    coo = cs.tocoo()
    cpairs = Pairs(*_sorted(users[coo.row] * n + coo.col, coo.data.astype(np.float64)))
    return Candidates(u, i, features(s, cat, u, i, cpairs.get(u * n + i)))


def features(s: Signals, cat: Catalog, u: I64, i: I64, covis: F64) -> F32:
    """The ranker's inputs (``rules.FEATURES``, in order) of the pairs (u, i); ``covis``:
    each pair's co-visitation score (the shopper's recent items x the item)."""
    n = s.n_items
    n_leaves = s.leaf_top.shape[0]
    n_depts = int(cat.dept.max()) + 1
    als = np.einsum("ij,ij->i", s.user_factors[u], s.item_factors[i]).astype(np.float64)
    tot = np.maximum(s.user_total[u], 1e-9)
    leaf_last = s.leaf_last.get(u * n_leaves + cat.leaf[i], -np.inf)
    item_last = s.item_last.get(u * n + i, -np.inf)
    f = np.column_stack(
        [
            als,
            _group_rank(u, als),
            covis,
            np.where(covis > 0, _group_rank(u, covis), 999.0),
            np.log1p(s.popularity[i]),
            s.leaf_aff.get(u * n_leaves + cat.leaf[i]) / tot,
            s.dept_aff.get(u * n_depts + cat.dept[i]) / tot,
            cat.log_price[i] - s.user_log_price[u],
            np.minimum((s.t_end - leaf_last) / DAY_S, rules.NEVER_DAYS),
            np.minimum((s.t_end - item_last) / DAY_S, rules.NEVER_DAYS),
            s.item_events.get(u * n + i),
            np.log1p(s.user_total[u]),
        ]
    )
    assert f.shape[1] == len(rules.FEATURES)
    return f.astype(np.float32)


def _sorted(keys: I64, values: F64) -> tuple[I64, F64]:
    o = np.argsort(keys, kind="stable")
    return keys[o], values[o]


def labels(cand: Candidates, window: Events, n_items: int) -> npt.NDArray[np.int32]:
    """Relevance of each candidate in the label window: 2 carted or ordered, 1 viewed."""
    k = window.user * n_items + window.item
    strong = Pairs.reduce(k[window.kind >= 1], np.ones(int((window.kind >= 1).sum())))
    weak = Pairs.reduce(k, np.ones(len(k)))
    ck = cand.user * n_items + cand.item
    return np.where(strong.get(ck) > 0, 2, np.where(weak.get(ck) > 0, 1, 0)).astype(np.int32)


def train_ranker(cand: Candidates, y: npt.NDArray[np.int32], cfg: Config) -> xgb.Booster:
    """XGBoost LambdaMART (rank:ndcg) over the candidates of shoppers with any positive."""
    pos_users = unique(cand.user[y > 0])
    if len(pos_users) > cfg.ranker_users:
        pos_users = np.random.default_rng(cfg.seed).choice(pos_users, cfg.ranker_users, False)
    m = np.isin(cand.user, pos_users)  # candidates are sorted by user already
    # negatives sampled down to about ``ranker_negatives`` per shopper: the ranker's time
    # goes with its rows, and the positives carry the signal
    neg = m & (y == 0)
    n_neg = np.bincount(cand.user[neg], minlength=int(cand.user.max()) + 1)
    p_keep = cfg.ranker_negatives / np.maximum(n_neg[cand.user], 1)
    rnd = np.random.default_rng(cfg.seed).random(len(y))
    m &= (y > 0) | (rnd < p_keep)
    dm = xgb.DMatrix(cand.features[m], label=y[m], qid=cand.user[m],
                     feature_names=list(rules.FEATURE_NAMES))  # fmt: skip
    params: dict[str, Any] = {
        "objective": "rank:ndcg",
        "eta": 0.1,
        "max_depth": cfg.ranker_depth,
        "min_child_weight": 1.0,
        "subsample": 0.8,
        "tree_method": "hist",
        "nthread": cfg.threads,
        "seed": cfg.seed,
        "lambdarank_pair_method": "topk",
        "lambdarank_num_pair_per_sample": 10,
        "eval_metric": "ndcg@10",
    }
    return xgb.train(params, dm, num_boost_round=cfg.ranker_rounds)


def rank(booster: xgb.Booster, cand: Candidates) -> F64:
    dm = xgb.DMatrix(cand.features, feature_names=list(rules.FEATURE_NAMES))
    return np.asarray(booster.predict(dm), dtype=np.float64)


def precompute(s: Signals, booster: xgb.Booster, cat: Catalog, cfg: Config) -> tuple[
    npt.NDArray[np.int32], F32
]:  # fmt: skip
    """Each shopper's ranked list for serving (users x ``serve_top`` item indexes, -1
    padded, and the ranker's scores): the candidates and features of training over the
    serving signals, ranked once here so a request reads a list instead of running XGBoost."""
    n = cfg.serve_top
    items = np.full((s.n_users, n), -1, dtype=np.int32)
    scores = np.zeros((s.n_users, n), dtype=np.float32)
    users = np.flatnonzero(s.user_total > 0).astype(np.int64)
    booster.set_param({"nthread": cfg.threads})
    for a in range(0, len(users), cfg.serve_batch):
        cand = candidates(s, cat, users[a : a + cfg.serve_batch], cfg)
        if len(cand) == 0:
            continue
        sc = np.asarray(booster.inplace_predict(cand.features), dtype=np.float64)
        order = np.lexsort((-sc, cand.user))
        u = cand.user[order]
        pos = np.arange(len(u)) - np.searchsorted(u, u)
        keep = pos < n
        items[u[keep], pos[keep]] = cand.item[order][keep]
        scores[u[keep], pos[keep]] = sc[order][keep]
    return items, scores


def top_k_by_user(user: I64, item: I64, score: F64, k: int) -> dict[int, list[int]]:
    order = np.lexsort((-score, user))
    u, i = user[order], item[order]
    first = np.searchsorted(u, u)
    keep = (np.arange(len(u)) - first) < k
    out: dict[int, list[int]] = {}
    for uu, ii in zip(u[keep].tolist(), i[keep].tolist(), strict=True):
        out.setdefault(uu, []).append(ii)
    return out


@dataclass
class Model:
    """A trained model: the signals of all events, the ranker learnt on the last window and
    its held-out metrics."""

    cfg: Config
    signals: Signals
    ranker: xgb.Booster
    timer: Timer
    metrics: dict[str, float]
    top_items: npt.NDArray[np.int32]  # users x serve_top, -1 padded (precompute)
    top_scores: F32


HOLDOUT_SHARE: Final = 0.2
HOLDOUT_MAX: Final = 2_000


def train(ev: Events, cat: Catalog, n_users: int, t_end: int, label_days: float,
          cfg: Config) -> Model:  # fmt: skip
    """Ranker labels: the last ``label_days`` before ``t_end`` (signals fitted before them);
    a fifth of those shoppers are held out and measured; then the signals are refitted on
    everything up to ``t_end`` for serving."""
    timer = Timer()
    t_label = int(t_end - label_days * DAY_S)
    early = fit_signals(ev.before(t_label), cat, n_users, t_label, cfg, timer)
    window = ev.between(t_label, t_end)
    with timer.stage("candidates"):
        # the shoppers who carted or ordered in the window: the ranker learns from at most
        # ranker_users of them (candidates cost time per shopper), a fifth is held out
        users = unique(window.user[window.kind >= 1])
        rng = np.random.default_rng(cfg.seed)
        held = rng.random(len(users)) < HOLDOUT_SHARE
        learn = users[~held]
        if len(learn) > cfg.ranker_users:
            learn = np.sort(rng.choice(learn, cfg.ranker_users, replace=False))
        cand = candidates(early, cat, learn, cfg)
        y = labels(cand, window, cat.n)
    with timer.stage("ranker"):
        booster = train_ranker(cand, y, cfg)
    with timer.stage("holdout"):
        metrics = holdout_ndcg(early, booster, cat, window, users[held][:HOLDOUT_MAX], cfg)
    final = fit_signals(ev.before(t_end), cat, n_users, t_end, cfg, timer, warm=early)
    with timer.stage("precompute"):
        top_items, top_scores = precompute(final, booster, cat, cfg)
    return Model(cfg, final, booster, timer, metrics, top_items, top_scores)


def bought_by_user(bought: I64, n_items: int) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for u, i in zip((bought // n_items).tolist(), (bought % n_items).tolist(), strict=True):
        out.setdefault(u, set()).add(i)
    return out


def fill(ranked: Sequence[int], fallback: Sequence[int], skip: set[int], k: int) -> list[int]:
    """``ranked`` then ``fallback``, without ``skip`` or repeats, cut at ``k``."""
    out: list[int] = []
    for i in (*ranked, *fallback):
        if i not in skip and i not in out:
            out.append(i)
            if len(out) == k:
                break
    return out


# --- artifacts -------------------------------------------------------------------------------

_PAIRS = ("leaf_aff", "leaf_last", "dept_aff", "item_last", "item_events")
_CSR = ("covis", "user_items", "recent")


def to_arrays(
    model: Model, cat: Catalog, product_ids: I64, user_ids: I64
) -> dict[str, npt.NDArray[Any]]:
    """The model as named arrays (the registry's arrays.npz); ``product_ids`` and
    ``user_ids`` (both ascending) name the item and user indexes."""
    s = model.signals
    out: dict[str, npt.NDArray[Any]] = {
        "product_ids": product_ids,
        "user_ids": user_ids,
        "cat_leaf": cat.leaf,
        "cat_dept": cat.dept,
        "cat_log_price": cat.log_price,
        "cat_active": cat.active,
        "dims": np.array([s.n_users, s.n_items, s.t_end], dtype=np.int64),
        "top_items": model.top_items,
        "top_scores": model.top_scores,
    }
    for name in ("popularity", "user_factors", "item_factors", "bought", "user_total",
                 "user_log_price", "leaf_top", "popular"):  # fmt: skip
        out[name] = getattr(s, name)
    for name in _PAIRS:
        p: Pairs = getattr(s, name)
        out[f"{name}.keys"], out[f"{name}.values"] = p.keys, p.values
    for name in _CSR:
        c: sp.csr_matrix = getattr(s, name)
        out[f"{name}.data"], out[f"{name}.indices"], out[f"{name}.indptr"] = (
            c.data, c.indices, c.indptr,
        )  # fmt: skip
    return out


def from_arrays(a: Any) -> tuple[Signals, Catalog, I64]:
    n_users, n_items, t_end = (int(x) for x in a["dims"])
    shape = {"covis": (n_items, n_items), "user_items": (n_users, n_items),
             "recent": (n_users, n_items)}  # fmt: skip
    kw: dict[str, Any] = {}
    for name in _PAIRS:
        kw[name] = Pairs(a[f"{name}.keys"], a[f"{name}.values"])
    for name in _CSR:
        kw[name] = sp.csr_matrix(
            (a[f"{name}.data"], a[f"{name}.indices"], a[f"{name}.indptr"]), shape=shape[name]
        )
    s = Signals(
        n_users=n_users, n_items=n_items, t_end=t_end, popularity=a["popularity"],
        user_factors=a["user_factors"], item_factors=a["item_factors"], bought=a["bought"],
        user_total=a["user_total"], user_log_price=a["user_log_price"],
        leaf_top=a["leaf_top"], popular=a["popular"], **kw,
    )  # fmt: skip
    cat = Catalog(a["cat_leaf"], a["cat_dept"], a["cat_log_price"], a["cat_active"])
    return s, cat, a["product_ids"]


def ranker_bytes(booster: xgb.Booster) -> bytes:
    return bytes(booster.save_raw("ubj"))


def ranker_from(raw: bytes) -> xgb.Booster:
    b = xgb.Booster()
    b.load_model(bytearray(raw))
    return b


def holdout_ndcg(
    s: Signals, booster: xgb.Booster, cat: Catalog, window: Events, users: I64, cfg: Config
) -> dict[str, float]:
    """NDCG@10 of the blend and of popularity on label-window shoppers the ranker did not
    learn from, with the signals from before the window (the metrics a version carries)."""
    t = window.kind >= 1
    targets: dict[int, set[int]] = {}
    for u, i in zip(window.user[t].tolist(), window.item[t].tolist(), strict=True):
        targets.setdefault(u, set()).add(i)
    users = np.array([u for u in users.tolist() if u in targets], dtype=np.int64)
    if len(users) == 0:
        return {"users": 0.0}
    cand = candidates(s, cat, users, cfg)
    top = top_k_by_user(cand.user, cand.item, rank(booster, cand), 10)
    pop = s.popular.tolist()
    bought = bought_by_user(s.bought, s.n_items)
    blend = [rules.ndcg_binary_at(10, top.get(u, []), targets[u]) for u in users.tolist()]
    base = [
        rules.ndcg_binary_at(10, fill([], pop, bought.get(u, set()), 10), targets[u])
        for u in users.tolist()
    ]
    return {
        "users": float(len(users)),
        "ndcg@10_blend": float(np.mean(blend)),
        "ndcg@10_popularity": float(np.mean(base)),
    }
