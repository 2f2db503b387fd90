"""Recommendation rules, pure: the features (defined once: name, type, source, freshness),
the weight of each kind of signal, the offline measures, what may never be recommended and
which newly trained version is promoted (docs/recommendations.md).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

import msgspec

from nexuscart.domain.search import ndcg_at

# --- signals ---------------------------------------------------------------------------------

Kind = Literal["view", "cart", "order"]
KINDS: Final[tuple[Kind, ...]] = ("view", "cart", "order")
# how much one event says about a shopper's interest (an order says most); the same weights
# feed popularity, co-visitation, the ALS confidence and a shopper's recent items
KIND_WEIGHT: Final[tuple[float, float, float]] = (1.0, 3.0, 5.0)
POPULARITY_HALF_LIFE_S: Final = 7 * 86_400  # trending: a week-old event counts half
RECENT_HALF_LIFE_S: Final = 86_400  # a shopper's recent items: yesterday's count half
RECENT_ITEMS: Final = 20  # a shopper's most recent items kept for co-visitation
COVIS_WINDOW_S: Final = 3_600  # two events of one shopper this close are "together"
COVIS_LAG: Final = 5  # each event pairs with the shopper's next few events
COVIS_TOP: Final = 50  # neighbours kept per item
# trending by forward decay: an event adds weight * 2^((t - epoch) / half-life), so older
# events weigh relatively less without ever rewriting a score (a double holds it for
# centuries at a week's half-life)
TREND_EPOCH_S: Final = 1_767_225_600  # 2026-01-01T00:00:00Z


def trend_increment(weight: float, at_ms: int) -> float:
    return float(weight * 2.0 ** ((at_ms / 1000 - TREND_EPOCH_S) / POPULARITY_HALF_LIFE_S))


# --- features, defined once ------------------------------------------------------------------

Source = Literal["offline", "online"]


class Feature(msgspec.Struct, frozen=True):
    name: str
    type: str  # float32 for every ranker input
    source: str  # where its value comes from
    freshness: str  # how stale it may be when read


FEATURES: Final[tuple[Feature, ...]] = (
    Feature("als_score", "float32", "ALS factors of the active model (user . item)", "training"),
    Feature("als_rank", "float32", "rank of the item in the shopper's ALS candidates", "training"),
    Feature(
        "covis_score",
        "float32",
        "co-visitation of the item with the shopper's recent items (recs:covis, recs:recent)",
        "seconds",
    ),
    Feature(
        "covis_rank", "float32", "rank among the shopper's co-visitation candidates", "seconds"
    ),
    Feature(
        "popularity", "float32", "log(1 + time-decayed weighted events of the item)", "seconds"
    ),
    Feature(
        "leaf_affinity",
        "float32",
        "share of the shopper's events in the item's leaf category",
        "training",
    ),
    Feature(
        "dept_affinity",
        "float32",
        "share of the shopper's events in the item's department",
        "training",
    ),
    Feature(
        "price_gap",
        "float32",
        "log(item price) - mean log price of the shopper's items (the price band)",
        "training",
    ),
    Feature(
        "leaf_recency_days",
        "float32",
        "days since the shopper's last event in the item's leaf category (999: never)",
        "training",
    ),
    Feature(
        "item_recency_days",
        "float32",
        "days since the shopper's last event on the item itself (999: never)",
        "training",
    ),
    Feature("item_events", "float32", "the shopper's events on the item", "training"),
    Feature("user_activity", "float32", "log(1 + the shopper's events)", "training"),
)
FEATURE_NAMES: Final = tuple(f.name for f in FEATURES)
NEVER_DAYS: Final = 999.0

# --- offline measures ------------------------------------------------------------------------


def recall_at(k: int, ranked: Sequence[int], relevant: Iterable[int]) -> float:
    rel = set(relevant)
    if not rel:
        return 0.0
    return len(rel.intersection(ranked[:k])) / min(len(rel), k)


def ndcg_binary_at(k: int, ranked: Sequence[int], relevant: Iterable[int]) -> float:
    return ndcg_at(k, ranked, dict.fromkeys(relevant, 1))


def coverage(lists: Iterable[Sequence[int]], catalogue_size: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    seen: set[int] = set()
    for items in lists:
        seen.update(items)
    return len(seen) / catalogue_size if catalogue_size else 0.0


# --- what may be recommended -----------------------------------------------------------------

# departments whose products are bought again (a shampoo), unlike a television: an already
# bought consumable may come back, an already bought durable may not
CONSUMABLE_DEPARTMENTS: Final = frozenset({"Beauty", "Grocery", "Health", "Pet Supplies"})


def consumable_categories(tree: Iterable[tuple[int, int | None, str]]) -> frozenset[int]:
    """The categories (any depth) under a consumable department, from (id, parent, name)."""
    parent: dict[int, int | None] = {}
    name: dict[int, str] = {}
    for cid, pid, nm in tree:
        parent[cid], name[cid] = pid, nm
    out = set()
    for cid in parent:
        root, hops = cid, 0
        while parent.get(root) is not None and hops < 64:  # a cycle must not hang us
            root, hops = parent[root] or root, hops + 1
        if name.get(root) in CONSUMABLE_DEPARTMENTS:
            out.add(cid)
    return frozenset(out)


def eligible(
    status: str, available: int, bought: bool, consumable: bool
) -> bool:  # fmt: skip
    """Never archived (or draft), never out of stock (available units, holds taken off),
    never an already bought durable. An already bought consumable may come back: a refill."""
    return status == "active" and available > 0 and not (bought and not consumable)


def keep_eligible(
    ranked: Sequence[int],
    status: Mapping[int, str],
    available: Mapping[int, int],
    bought: Iterable[int],
    consumable: Iterable[int],
) -> list[int]:
    """``ranked`` without what ``eligible`` refuses; unknown items are refused (no status
    or stock known means not shown)."""
    b, c = set(bought), set(consumable)
    return [i for i in ranked if eligible(status.get(i, ""), available.get(i, 0), i in b, i in c)]


# --- A/B tests -------------------------------------------------------------------------------

BUCKETS: Final = 10_000  # traffic shares are set in hundredths of a percent


def bucket(experiment: str, user_id: int) -> int:
    """The user's bucket in an experiment, 0..BUCKETS-1: a keyed BLAKE2b of the pair, so it
    is the same in every process and on every host (Python's ``hash`` is salted per
    process) and independent between experiments."""
    digest = hashlib.blake2b(
        str(user_id).encode(), digest_size=8, key=experiment.encode()[:64]
    ).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def assign(experiment: str, user_id: int, weights: Sequence[int]) -> int:
    """The arm (index into ``weights``, shares that add up to BUCKETS) of a user."""
    b = bucket(experiment, user_id)
    edge = 0
    for arm, w in enumerate(weights):
        edge += w
        if b < edge:
            return arm
    return len(weights) - 1


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default)."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    d = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / d
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / d
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(total: float, squares: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Normal interval of a mean from its sum and sum of squares (revenue per user)."""
    if n < 2:
        return (0.0, 0.0) if n == 0 else (total, total)
    mean = total / n
    var = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = z * math.sqrt(var / n)
    return (mean - half, mean + half)


def srm_statistic(observed: Sequence[int], weights: Sequence[int]) -> float:
    """Pearson's chi-square of the users per arm against the configured shares (the
    sample-ratio-mismatch check; its p-value needs the chi-square law, see app layer)."""
    n = sum(observed)
    if n == 0:
        return 0.0
    total_w = sum(weights)
    return sum(
        (o - n * w / total_w) ** 2 / (n * w / total_w)
        for o, w in zip(observed, weights, strict=True)
        if w > 0
    )


# --- scheduled training: which new version becomes active ------------------------------------

PROMOTE_METRIC: Final = "ndcg@10_blend"  # meta.json "metrics": the blend's holdout NDCG@10
# each version is measured on its own holdout (new signals, another fifth of the shoppers):
# a drop this small is noise, and the newer version knows the newer products and shoppers
PROMOTE_TOLERANCE: Final = 0.005


def promotion(
    new: Mapping[str, float], active: Mapping[str, float] | None,
    tolerance: float = PROMOTE_TOLERANCE,
) -> tuple[bool, str]:  # fmt: skip
    """Whether a newly trained version (its metrics) should replace the active one (its
    metrics; None: no version is active), and why, for the log. A version without a holdout
    measure (no held-out shopper) replaces only nothing; an active one without it is
    replaced by any measured version."""
    if active is None:
        return True, "no version is active"
    n, a = new.get(PROMOTE_METRIC), active.get(PROMOTE_METRIC)
    if n is None or not math.isfinite(n):
        return False, f"the new version has no holdout {PROMOTE_METRIC}"
    if a is None or not math.isfinite(a):
        return True, f"the active version has no holdout {PROMOTE_METRIC} to compare"
    if n >= a - tolerance:
        return True, f"{PROMOTE_METRIC} {n:.4f} against the active version's {a:.4f}"
    return False, (
        f"{PROMOTE_METRIC} {n:.4f} is below the active version's {a:.4f} by more than {tolerance}"
    )
