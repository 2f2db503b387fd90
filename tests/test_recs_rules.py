"""Recommendation rules, pure: the offline measures and the filter nothing may pass."""

from __future__ import annotations

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
