"""A model version loaded for serving (one per process): each known shopper's ranked list
(ranked at training, ``model.precompute``), the cold-start bestsellers, and on demand the
TreeSHAP contributions of answered items, with the features of ``domain.recs.FEATURES``
computed by the same code as in training (``model.features``)."""

from __future__ import annotations

# first: it makes OpenMP threads wait passively before XGBoost loads (spinning threads made
# a DMatrix of 23 rows take 52 ms instead of 0.8 ms on the shared 2-core box)
from services.recommendations import model as m  # isort: skip

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import xgboost as xgb

from nexuscart.adapters.recs_registry import ModelRegistry
from nexuscart.app.recommendations import EXPLAIN_TOP, POOL_POPULAR, Contribution
from nexuscart.domain import recs as rules

_HUMAN: Final = {
    "als_score": "matches what you like",
    "als_rank": "matches what you like",
    "covis_score": "viewed together with your recent items",
    "covis_rank": "viewed together with your recent items",
    "popularity": "popular now",
    "leaf_affinity": "from a category you like",
    "dept_affinity": "from a department you like",
    "price_gap": "in your price range",
    "leaf_recency_days": "from a category you looked at lately",
    "item_recency_days": "you looked at it lately",
    "item_events": "you looked at it lately",
    "user_activity": "popular with shoppers like you",
}


class Loaded:
    def __init__(self, version: str, arrays: Any, ranker: bytes) -> None:
        self.version = version
        self.s, self.cat, self.product_ids = m.from_arrays(arrays)
        self.user_ids = arrays["user_ids"]
        self.booster = m.ranker_from(ranker)
        self.booster.set_param({"nthread": 1})  # one request's rows: threads only cost
        self.n_leaves = self.s.leaf_top.shape[0]
        # each known shopper's ranked list (product ids, -1 padded) and the ranker's scores,
        # ranked at training; a version saved before them serves the cold-start pool
        # int32 indexes and float32 scores: 400 bytes a shopper (40 MB for 100,000)
        if "top_items" in arrays:
            self.top_items = np.asarray(arrays["top_items"], dtype=np.int32)
            self.top_scores = np.asarray(arrays["top_scores"], dtype=np.float32)
        else:
            self.top_items = np.full((len(self.user_ids), 0), -1, dtype=np.int32)
            self.top_scores = np.zeros((len(self.user_ids), 0), dtype=np.float32)
        # per request: a dict lookup for the shopper's row and the length of their list
        # (numpy calls on one scalar cost microseconds each)
        self._rows: dict[int, int] = {u: n for n, u in enumerate(self.user_ids.tolist())}
        self._lengths: list[int] = np.count_nonzero(self.top_items >= 0, axis=1).tolist()
        self.cold_pids: list[int] = self.product_ids[self.s.popular[:POOL_POPULAR]].tolist()
        self.cold_scores = np.log1p(self.s.popularity[self.s.popular[:POOL_POPULAR]]).tolist()

    def _user(self, user_id: int) -> int | None:
        k = int(np.searchsorted(self.user_ids, user_id))
        return k if k < len(self.user_ids) and self.user_ids[k] == user_id else None

    def _items(self, pids: Sequence[int]) -> np.typing.NDArray[np.int64]:
        """Item indexes of product ids (-1: unknown to this model)."""
        a = np.asarray(pids, dtype=np.int64)
        k = np.minimum(np.searchsorted(self.product_ids, a), len(self.product_ids) - 1)
        return np.where(self.product_ids[k] == a, k, -1)

    def ranked(self, user_id: int, context: int = 0) -> tuple[list[int], list[float], bool]:
        """The shopper's list, best first, with its scores, and whether it is personal
        (ranked at training). A shopper the model does not know gets the bestsellers of the
        context product's leaf category (on a product page) ahead of the global ones. No
        ranker on this path."""
        u = self._rows.get(user_id)
        if u is not None:
            n = self._lengths[u]  # -1 padding sits at the end
            if n:
                return (
                    self.product_ids[self.top_items[u, :n]].tolist(),
                    self.top_scores[u, :n].tolist(),
                    True,
                )
        if context:
            idx = self._leaf_top_of(context)
            if len(idx):
                pids = self.product_ids[idx].tolist() + self.cold_pids
                # the category's first, by popularity, above every global bestseller
                lift = max(self.cold_scores, default=0.0) + 1.0
                sc = (np.log1p(self.s.popularity[idx]) + lift).tolist() + self.cold_scores
                return pids, sc, False
        return self.cold_pids, self.cold_scores, False

    def _leaf_top_of(self, product_id: int) -> np.typing.NDArray[np.int64]:
        """Item indexes of the bestsellers of the product's leaf category."""
        idx = int(self._items([product_id])[0])
        if idx < 0:
            return np.zeros(0, dtype=np.int64)
        top: np.typing.NDArray[np.int64] = self.s.leaf_top[self.cat.leaf[idx]]
        return top[top >= 0]

    def category_pool(self, product_id: int) -> list[int]:
        """The bestsellers of the product's leaf category (the fallback of "similar")."""
        return [int(p) for p in self.product_ids[self._leaf_top_of(product_id)]]

    def explain(
        self, user_id: int, recent: Sequence[int], pids: Sequence[int]
    ) -> dict[int, list[Contribution]]:
        """Exact TreeSHAP (``pred_contribs``) of the answered items the model knows, on
        demand: the features as in training (the co-visitation one from the live recent
        items), EXPLAIN_TOP contributions each. About 1-3 ms a row on this machine."""
        u = self._user(user_id)
        idx = self._items(pids)
        known = idx >= 0
        if u is None or not known.any():
            return {}
        items = idx[known]
        # the live recent items (newest first, halving weights) x the model's co-visitation
        # rows, for these items only
        covis = np.zeros(len(items), dtype=np.float64)
        order = np.argsort(items)
        sorted_items = items[order]
        r_idx = self._items(recent)
        for w, r in zip((0.5**n for n in range(len(r_idx))), r_idx.tolist(), strict=False):
            if r < 0:
                continue
            a, b = self.s.covis.indptr[r], self.s.covis.indptr[r + 1]
            cols, vals = self.s.covis.indices[a:b], self.s.covis.data[a:b]
            pos = np.minimum(np.searchsorted(sorted_items, cols), len(items) - 1)
            hit = sorted_items[pos] == cols
            np.add.at(covis, order[pos[hit]], w * vals[hit])
        f = m.features(self.s, self.cat, np.full(len(items), u, dtype=np.int64), items, covis)
        dm = xgb.DMatrix(f, feature_names=list(rules.FEATURE_NAMES), nthread=1)
        c = self.booster.predict(dm, pred_contribs=True)[:, :-1]  # last: the bias
        kp = [p for p, ok in zip(pids, known.tolist(), strict=True) if ok]
        out: dict[int, list[Contribution]] = {}
        for row, pid in enumerate(kp):
            best = np.argsort(-np.abs(c[row]))[:EXPLAIN_TOP]
            out[pid] = [
                Contribution(rules.FEATURE_NAMES[j], round(float(c[row, j]), 4))
                for j in best.tolist()
            ]
        return out

    def reason(self, contribs: list[Contribution] | None, personal: bool) -> str:
        if not contribs:
            return "recommended for you" if personal else "popular now"
        best = max(contribs, key=lambda c: c.value)
        return _HUMAN.get(best.feature, "recommended for you") if best.value > 0 else "popular now"


def load(registry: ModelRegistry, version: str) -> Loaded:
    art = registry.load(version)
    return Loaded(version, art.arrays, art.ranker)
