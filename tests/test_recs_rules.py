"""Recommendation rules, pure: the offline measures and the filter nothing may pass."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexuscart.domain import recs as rules


def test_recall_counts_hits_in_the_top_k_over_what_k_could_hold() -> None:
    assert rules.recall_at(3, [1, 2, 3, 4], {3, 4}) == 0.5
    assert rules.recall_at(2, [1, 2], {1, 2, 3}) == 1.0  # only 2 could fit
    assert rules.recall_at(10, [1], set()) == 0.0


def test_ndcg_is_one_for_a_perfect_list_and_lower_when_hits_come_later() -> None:
    assert rules.ndcg_binary_at(10, [5, 6], {5, 6}) == 1.0
    assert 0 < rules.ndcg_binary_at(10, [1, 2, 5], {5}) < 1.0


def test_coverage_is_the_share_of_the_catalogue_recommended() -> None:
    assert rules.coverage([[1, 2], [2, 3]], 10) == 0.3


def test_features_are_defined_once_with_unique_names() -> None:
    assert len(set(rules.FEATURE_NAMES)) == len(rules.FEATURES)
    assert all(f.type and f.source and f.freshness for f in rules.FEATURES)


ITEMS = st.integers(0, 30)


@given(
    ranked=st.lists(ITEMS, max_size=40),
    status=st.dictionaries(ITEMS, st.sampled_from(["active", "archived", "draft"])),
    available=st.dictionaries(ITEMS, st.integers(-3, 5)),
    bought=st.sets(ITEMS),
    consumable=st.sets(ITEMS),
)
def test_filter_never_returns_archived_out_of_stock_or_bought_durables(
    ranked: list[int],
    status: dict[int, str],
    available: dict[int, int],
    bought: set[int],
    consumable: set[int],
) -> None:
    kept = rules.keep_eligible(ranked, status, available, bought, consumable)
    for i in kept:
        assert status.get(i) == "active"
        assert available.get(i, 0) > 0
        assert i not in bought or i in consumable
    # and it drops nothing eligible, in order
    assert kept == [
        i
        for i in ranked
        if status.get(i) == "active"
        and available.get(i, 0) > 0
        and (i not in bought or i in consumable)
    ]


# --- A/B assignment and statistics -----------------------------------------------------------


@pytest.mark.parametrize(
    ("experiment", "weights"),
    [("home-v2", [5000, 5000]), ("blend-vs-als", [5000, 3000, 2000]), ("tiny", [9900, 100])],
)
def test_assignment_splits_100k_users_within_1_percent_of_target(
    experiment: str, weights: list[int]
) -> None:
    n = 100_000
    counts = Counter(rules.assign(experiment, u, weights) for u in range(1, n + 1))
    for arm, w in enumerate(weights):
        assert abs(counts[arm] / n - w / rules.BUCKETS) <= 0.01, (arm, counts)


@given(st.text(min_size=1, max_size=30), st.integers(1, 2**62))
def test_assignment_is_stable_and_in_range(experiment: str, user: int) -> None:
    a = rules.assign(experiment, user, [2500, 2500, 5000])
    assert a == rules.assign(experiment, user, [2500, 2500, 5000])
    assert 0 <= rules.bucket(experiment, user) < rules.BUCKETS


def test_experiments_assign_independently() -> None:
    a = [rules.assign("exp-a", u, [5000, 5000]) for u in range(1, 20_001)]
    b = [rules.assign("exp-b", u, [5000, 5000]) for u in range(1, 20_001)]
    same = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    assert 0.48 < same < 0.52  # what two independent fair coins agree on


def test_wilson_interval_contains_the_rate_and_narrows_with_traffic() -> None:
    lo, hi = rules.wilson(50, 1000)
    assert lo < 0.05 < hi
    lo2, hi2 = rules.wilson(500, 10_000)
    assert hi2 - lo2 < hi - lo
    assert rules.wilson(0, 0) == (0.0, 1.0)


def test_srm_statistic_is_small_on_target_and_large_off_it() -> None:
    assert rules.srm_statistic([5010, 4990], [5000, 5000]) < 1
    assert rules.srm_statistic([5500, 4500], [5000, 5000]) > 50
