"""A synthetic shopper population over the generated catalog (``devtools.catalog_gen``):
seeded, deterministic, and labelled synthetic wherever its figures are reported.

The latent model (docs/recommendations.md states it for readers of the evaluation):

* **Items** are the catalog's products: a leaf category (inside a category and a
  department), a price (the first variant's) and a Zipf popularity (``catalog_gen``).
* **Complements**: every leaf category has a companion leaf in the same department (phones
  and chargers); every item has ``PARTNERS`` partner items drawn from its companion leaf by
  popularity. A purchase is followed, with ``P_COMPLEMENT``, by a look at and often a
  purchase of one of its partners: the co-purchase structure co-visitation should find.
* **Users** have a Dirichlet(``DEPT_ALPHA``) preference over departments, ``FAVOURITES``
  favourite leaves drawn from it (Dirichlet weights), a price band (the price they like,
  relative to a leaf's median price: log-normal) and an activity level (log-normal number
  of sessions over ``days``).
* **Sessions**: at a uniform time, a user picks a favourite leaf (or, with ``P_EXPLORE``,
  a leaf by global popularity), views a geometric number of items drawn by popularity times
  price fit, may come back to an item seen in an earlier session (``P_REVISIT``), adds to
  cart with a probability that grows with price fit, and orders from the cart.

Kinds: 0 view, 1 add-to-cart, 2 order. Time in seconds from the start of the window.

    python -m devtools.shoppers_gen --users 20000 --products 5000 --seed 7   # a summary
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from devtools import catalog_gen

VIEW: Final = 0
CART: Final = 1
ORDER: Final = 2

DEPT_ALPHA: Final = 0.3  # small: most shoppers keep to one or two departments
FAVOURITES: Final = 4
P_EXPLORE: Final = 0.15
P_REVISIT: Final = 0.25
P_COMPLEMENT: Final = 0.45
PARTNERS: Final = 3
PRICE_SIGMA: Final = 0.35  # width of a shopper's liked price band (log scale)
MEAN_VIEWS: Final = 3.0
P_CART: Final = 0.12
P_ORDER: Final = 0.5
# the number of price bands a shopper's taste is rounded to (weights precomputed per band)
PRICE_BANDS: Final = 7
BAND_LOG: Final = np.linspace(-0.9, 0.9, PRICE_BANDS)
DAY_S: Final = 86_400

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Items:
    """Catalog metadata by item index (product id - 1)."""

    product_id: I64
    leaf: I64  # category id of the leaf
    category: I64  # its parent
    department: I64  # its grandparent
    price_minor: I64
    popularity: F64
    active: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.product_id)


@dataclass(frozen=True)
class Interactions:
    """One row per event, sorted by time."""

    user: I64  # 0-based user index (user id - 1)
    item: I64  # item index
    ts: I64  # seconds since the window's start
    kind: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.user)

    def where(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        return Interactions(self.user[mask], self.item[mask], self.ts[mask], self.kind[mask])


@dataclass(frozen=True)
class Population:
    items: Items
    events: Interactions
    n_users: int
    days: int
    seed: int


def catalog_items(n_products: int, seed: int) -> Items:
    parent = {c.category_id: c.parent_id for c in catalog_gen.categories(seed)}
    prods = list(catalog_gen.products(n_products, seed))
    leaf = np.array([p.category_id for p in prods], dtype=np.int64)
    cat = np.array([parent[int(x)] or 0 for x in leaf], dtype=np.int64)
    dept = np.array([parent[int(x)] or 0 for x in cat], dtype=np.int64)
    return Items(
        product_id=np.array([p.product_id for p in prods], dtype=np.int64),
        leaf=leaf,
        category=cat,
        department=dept,
        price_minor=np.array([p.variants[0].price_minor for p in prods], dtype=np.int64),
        popularity=np.array([p.popularity for p in prods], dtype=np.float64),
        active=np.array([p.status == "active" for p in prods], dtype=np.bool_),
    )


class _Leaf:
    """A leaf's items with cumulative choice weights per price band."""

    def __init__(self, items: list[int], pop: F64, rel_log_price: F64) -> None:
        self.items = items
        self.cum: list[list[float]] = []
        for centre in BAND_LOG:
            fit = np.exp(-((rel_log_price - centre) ** 2) / (2 * PRICE_SIGMA**2))
            self.cum.append(list(itertools.accumulate((pop * fit).tolist())))
        self.fit = [
            np.exp(-((rel_log_price - c) ** 2) / (2 * PRICE_SIGMA**2)).tolist() for c in BAND_LOG
        ]

    def draw(self, rng: random.Random, band: int) -> tuple[int, float]:
        cum = self.cum[band]
        k = bisect.bisect_left(cum, rng.random() * cum[-1])
        k = min(k, len(self.items) - 1)
        return self.items[k], self.fit[band][k]


def generate(
    n_users: int, n_products: int, *, seed: int = catalog_gen.DEFAULT_SEED, days: int = 60,
    sessions_per_user: float = 8.0,
) -> Population:  # fmt: skip
    """The population: ~``sessions_per_user`` x 4 events per user (about 32)."""
    items = catalog_items(n_products, seed)
    rng = random.Random(f"shoppers:{seed}")
    nrng = np.random.default_rng(seed)
    live = np.flatnonzero(items.active)
    by_leaf: dict[int, list[int]] = {}
    for i in live.tolist():
        by_leaf.setdefault(int(items.leaf[i]), []).append(i)
    leaves = sorted(by_leaf)
    leaf_objs: dict[int, _Leaf] = {}
    for lf in leaves:
        idx = np.array(by_leaf[lf])
        logp = np.log(items.price_minor[idx].astype(np.float64))
        leaf_objs[lf] = _Leaf(by_leaf[lf], items.popularity[idx], logp - np.median(logp))
    dept_of_leaf = {lf: int(items.department[by_leaf[lf][0]]) for lf in leaves}
    depts = sorted(set(dept_of_leaf.values()))
    leaves_of_dept = {d: [lf for lf in leaves if dept_of_leaf[lf] == d] for d in depts}
    leaf_pop = np.array([items.popularity[by_leaf[lf]].sum() for lf in leaves])
    leaf_cum = list(itertools.accumulate((leaf_pop / leaf_pop.sum()).tolist()))
    # complements: a companion leaf per leaf (same department when it has another), then
    # partner items drawn from it by popularity
    companion: dict[int, int] = {}
    for lf in leaves:
        pool = [x for x in leaves_of_dept[dept_of_leaf[lf]] if x != lf] or leaves
        companion[lf] = rng.choice(pool)
    partners: dict[int, list[int]] = {}
    for lf in leaves:
        comp = leaf_objs[companion[lf]]
        for i in by_leaf[lf]:
            partners[i] = [comp.draw(rng, PRICE_BANDS // 2)[0] for _ in range(PARTNERS)]

    users: list[int] = []
    itms: list[int] = []
    tss: list[int] = []
    kinds: list[int] = []
    horizon = days * DAY_S
    dept_pref = nrng.dirichlet([DEPT_ALPHA] * len(depts), size=n_users)
    activity = nrng.lognormal(0.0, 0.6, size=n_users)
    activity *= sessions_per_user / activity.mean()
    bands = np.clip(
        np.round(nrng.normal(PRICE_BANDS // 2, 1.5, size=n_users)), 0, PRICE_BANDS - 1
    ).astype(int)
    u = 0

    def emit(at: int, item: int, kind: int) -> int:
        users.append(u)
        itms.append(item)
        tss.append(at)
        kinds.append(kind)
        return at

    for u in range(n_users):
        d_cum = list(itertools.accumulate(dept_pref[u].tolist()))
        favs = []
        for _ in range(FAVOURITES):
            d = depts[min(bisect.bisect_left(d_cum, rng.random() * d_cum[-1]), len(depts) - 1)]
            favs.append(rng.choice(leaves_of_dept[d]))
        fav_cum = list(itertools.accumulate(nrng.dirichlet([1.0] * FAVOURITES).tolist()))
        band = int(bands[u])
        seen: list[int] = []
        n_sessions = max(1, int(nrng.poisson(activity[u])))
        for t0 in sorted(rng.randrange(horizon) for _ in range(n_sessions)):
            t = t0
            if rng.random() < P_EXPLORE:
                lf = leaves[min(bisect.bisect_left(leaf_cum, rng.random()), len(leaves) - 1)]
            else:
                lf = favs[min(bisect.bisect_left(fav_cum, rng.random()), FAVOURITES - 1)]
            leaf = leaf_objs[lf]
            n_views = int(nrng.geometric(1.0 / MEAN_VIEWS))
            picks: list[tuple[int, float]] = []
            if seen and rng.random() < P_REVISIT:
                picks.append((rng.choice(seen[-10:]), 1.0))
            picks += [leaf.draw(rng, band) for _ in range(n_views)]
            for item, fit in picks:
                t = emit(t + rng.randint(5, 120), item, VIEW)
                seen.append(item)
                if rng.random() >= P_CART * (0.3 + fit):
                    continue
                t = emit(t + rng.randint(5, 60), item, CART)
                if rng.random() >= P_ORDER:
                    continue
                t = emit(t + rng.randint(30, 300), item, ORDER)
                if rng.random() < P_COMPLEMENT:
                    mate = rng.choice(partners[item])
                    t = emit(t + rng.randint(10, 120), mate, VIEW)
                    if rng.random() < 0.5:
                        for k in (CART, ORDER):
                            t = emit(t + rng.randint(10, 120), mate, k)
    ts = np.minimum(np.array(tss, dtype=np.int64), horizon - 1)
    order = np.argsort(ts, kind="stable")
    ev = Interactions(
        user=np.array(users, dtype=np.int64)[order],
        item=np.array(itms, dtype=np.int64)[order],
        ts=ts[order],
        kind=np.array(kinds, dtype=np.int8)[order],
    )
    return Population(items=items, events=ev, n_users=n_users, days=days, seed=seed)


def users_for(interactions: int, sessions_per_user: float = 8.0) -> int:
    """How many users make about ``interactions`` events (about 4.1 per session)."""
    return max(1, math.ceil(interactions / (sessions_per_user * 4.1)))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.shoppers_gen", description=__doc__)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--products", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=catalog_gen.DEFAULT_SEED)
    ap.add_argument("--days", type=int, default=60)
    args = ap.parse_args(argv)
    pop = generate(args.users, args.products, seed=args.seed, days=args.days)
    ev = pop.events
    counts = np.bincount(ev.kind, minlength=3)
    sys.stdout.write(
        f"SYNTHETIC shoppers: users={pop.n_users} products={len(pop.items)} events={len(ev)} "
        f"views={counts[VIEW]} carts={counts[CART]} orders={counts[ORDER]}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
