"""A model version loaded for serving (one per process): the candidate pool of a shopper,
and the ranking of live candidates with the features of ``domain.recs.FEATURES`` computed
by the same code as in training (``model.features``), plus TreeSHAP contributions."""

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

    def _user(self, user_id: int) -> int | None:
        k = int(np.searchsorted(self.user_ids, user_id))
        return k if k < len(self.user_ids) and self.user_ids[k] == user_id else None

    def _items(self, pids: Sequence[int]) -> np.typing.NDArray[np.int64]:
        """Item indexes of product ids (-1: unknown to this model)."""
        a = np.asarray(pids, dtype=np.int64)
        k = np.minimum(np.searchsorted(self.product_ids, a), len(self.product_ids) - 1)
        return np.where(self.product_ids[k] == a, k, -1)

    def pool_for(self, user_id: int) -> list[int]:
        """The model's candidates for a shopper: the bestsellers of their favourite leaves
        and the overall bestsellers (co-visitation candidates come live from Redis)."""
        idx: list[int] = self.s.popular[:POOL_POPULAR].tolist()
        u = self._user(user_id)
        if u is not None:
            keys = self.s.leaf_aff.keys
            a, b = np.searchsorted(keys, [u * self.n_leaves, (u + 1) * self.n_leaves])
            if b > a:
                best = np.argsort(-self.s.leaf_aff.values[a:b])[:2]
                for leaf in (keys[a:b][best] % self.n_leaves).tolist():
                    idx += [i for i in self.s.leaf_top[leaf].tolist() if i >= 0]
        return [int(p) for p in self.product_ids[idx]]

    def category_pool(self, product_id: int) -> list[int]:
        """The bestsellers of the product's leaf category (the fallback of "similar")."""
        idx = int(self._items([product_id])[0])
        if idx < 0:
            return []
        top = self.s.leaf_top[self.cat.leaf[idx]]
        return [int(p) for p in self.product_ids[top[top >= 0]]]

    def rank(
        self,
        user_id: int,
        recent: Sequence[int],
        live: Sequence[tuple[int, float, float, float]],
        explain: bool,
        k: int = 10,
    ) -> list[tuple[int, float, list[Contribution] | None]]:
        pids = [x[0] for x in live]
        idx = self._items(pids)
        known = idx >= 0
        u = self._user(user_id)
        out: list[tuple[int, float, list[Contribution] | None]] = []
        if u is not None and known.any():
            items = idx[known]
            # the co-visitation feature as in training: the live recent items (newest
            # first, halving weights) x the model's co-visitation rows, for these items only
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
            users = np.full(len(items), u, dtype=np.int64)
            f = m.features(self.s, self.cat, users, items, covis)
            score = np.asarray(self.booster.inplace_predict(f), dtype=np.float64)
            contribs: list[list[Contribution] | None] = [None] * len(items)
            if explain:
                # exact TreeSHAP costs ~1-3 ms a row here: only the rows that are answered
                top_rows = np.argsort(-score)[:k]
                dm = xgb.DMatrix(f[top_rows], feature_names=list(rules.FEATURE_NAMES), nthread=1)
                c = self.booster.predict(dm, pred_contribs=True)[:, :-1]  # last: the bias
                for row, n in enumerate(top_rows.tolist()):
                    best = np.argsort(-np.abs(c[row]))[:EXPLAIN_TOP]
                    contribs[n] = [
                        Contribution(rules.FEATURE_NAMES[j], round(float(c[row, j]), 4))
                        for j in best.tolist()
                    ]
            kp = [p for p, ok in zip(pids, known.tolist(), strict=True) if ok]
            out = [(kp[n], float(score[n]), contribs[n]) for n in range(len(items))]
            out.sort(key=lambda x: -x[1])
        else:
            pop = np.log1p(self.s.popularity[np.maximum(idx, 0)]) * known
            for n, (pid, seen_with, cobuy, trend) in enumerate(live):
                if known[n]:
                    out.append((pid, float(2 * cobuy + seen_with + pop[n] + trend), None))
            out.sort(key=lambda x: -x[1])
        # products newer than the model: after its ranking, by their live signals
        fresh = [(p, 2 * b + c + t) for (p, c, b, t), ok in zip(live, known.tolist(),
                                                                strict=True) if not ok]  # fmt: skip
        out += [(p, float(sc), None) for p, sc in sorted(fresh, key=lambda x: -x[1])]
        return out

    def reason(self, contribs: list[Contribution] | None) -> str:
        if not contribs:
            return "popular now"
        best = max(contribs, key=lambda c: c.value)
        return _HUMAN.get(best.feature, "recommended for you") if best.value > 0 else "popular now"


def load(registry: ModelRegistry, version: str) -> Loaded:
    art = registry.load(version)
    return Loaded(version, art.arrays, art.ranker)
