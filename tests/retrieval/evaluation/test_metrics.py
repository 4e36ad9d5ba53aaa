"""metrics and ranking against hand-worked values and naive loops."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.errors import ConfigError, DatasetError, UnknownNameError
from retrieval.evaluation._metrics import (
    QueryTruth,
    average_precision,
    evaluate,
    mean_average_precision,
    ns_score,
    precision_at_k,
    recall_at_k,
    revisited_precision_at_k,
)
from retrieval.evaluation._ranking import positive_ranks, rank

# --- naive references, written to mirror the published code line by line --------------------


def oxford_compute_ap(pos: set[int], amb: set[int], ranked_list: list[int]) -> float:
    """Oxford Buildings compute_ap.cpp, transliterated (walks the list, skips junk)."""
    old_recall, old_precision, ap = 0.0, 1.0, 0.0
    intersect_size, j = 0, 0
    for item in ranked_list:
        if item in amb:
            continue
        if item in pos:
            intersect_size += 1
        recall = intersect_size / len(pos)
        precision = intersect_size / (j + 1.0)
        ap += (recall - old_recall) * ((old_precision + precision) / 2.0)
        old_recall, old_precision = recall, precision
        j += 1
    return ap


def naive_non_interpolated(pos: set[int], ignored: set[int], ranked_list: list[int]) -> float:
    """Precision at every positive, one by one; missed positives count 0."""
    kept = [i for i in ranked_list if i not in ignored]
    total = 0.0
    for n, item in enumerate(kept):
        if item in pos:
            total += sum(1 for x in kept[: n + 1] if x in pos) / (n + 1)
    return total / len(pos)


def revisitop_pk(ranked_list: list[int], qgnd: list[int], qgndj: list[int], k: int) -> float:
    """revisitop compute_map: junk shift of positive positions, then kq = min(max(pos), k)."""
    ranks = np.asarray(ranked_list)
    pos = np.arange(ranks.size)[np.isin(ranks, qgnd)]
    junk = np.arange(ranks.size)[np.isin(ranks, qgndj)]
    shift, ij = 0, 0
    for ip in range(len(pos)):
        while ij < len(junk) and pos[ip] > junk[ij]:
            shift += 1
            ij += 1
        pos[ip] -= shift
    pos += 1
    kq = min(int(pos.max()), k)
    return float((pos <= kq).sum() / kq)


# --- hand-worked AP ---------------------------------------------------------------------------


def test_ap_hand_worked_without_junk() -> None:
    # ranking 0 1 2 3 4, positives {0, 2}: positive j=0 at r=0, j=1 at r=2, n_pos = 2.
    # trapezoidal: j=0: (1 + 1/1)/2 * 1/2 = 1/2;  j=1: (1/2 + 2/3)/2 * 1/2 = 7/24  -> 19/24
    # non-interpolated: (1/1 + 2/3) / 2 = 5/6
    truth = QueryTruth.of([0, 2])
    ranking = [0, 1, 2, 3, 4]
    assert average_precision(ranking, truth) == pytest.approx(19 / 24)
    assert average_precision(ranking, truth, method="non_interpolated") == pytest.approx(5 / 6)


def test_ap_hand_worked_with_junk_removed_from_ranking() -> None:
    # ranking 5 0 6 1 2 3, junk {5, 6} -> 0 1 2 3; positives {1, 2} at r=1 (j=0), r=2 (j=1).
    # trapezoidal: (0/1 + 1/2)/2 * 1/2 = 1/8;  (1/2 + 2/3)/2 * 1/2 = 7/24  -> 10/24 = 5/12
    # non-interpolated: (1/2 + 2/3) / 2 = 7/12
    truth = QueryTruth.of([1, 2], junk=[5, 6])
    ranking = [5, 0, 6, 1, 2, 3]
    assert average_precision(ranking, truth) == pytest.approx(5 / 12)
    assert average_precision(ranking, truth, method="non_interpolated") == pytest.approx(7 / 12)
    # the same list with the junk counted as negatives scores lower:
    # positives at r=3, r=4: (0 + 1/4)/4 + (1/4 + 2/5)/4 = 1/16 + 13/80 = 18/80
    assert average_precision(ranking, QueryTruth.of([1, 2])) == pytest.approx(18 / 80)
    assert oxford_compute_ap({1, 2}, {5, 6}, ranking) == pytest.approx(5 / 12)


def test_ap_truncated_ranking_counts_missed_positives_and_drops_faiss_padding() -> None:
    # ranking 3 0 (then faiss -1 padding); positives {0, 9}: 0 at r=1, 9 never retrieved.
    # trapezoidal: (0 + 1/2)/2 * 1/2 = 1/8;  non-interpolated: (1/2) / 2 = 1/4
    truth = QueryTruth.of([0, 9])
    assert average_precision([3, 0, -1, -1], truth) == pytest.approx(1 / 8)
    assert average_precision([3, 0, -1], truth, method="non_interpolated") == pytest.approx(1 / 4)
    assert average_precision([3, 4], truth) == 0.0


def test_ap_perfect_and_empty_positives() -> None:
    assert average_precision([2, 1, 0], QueryTruth.of([2, 1])) == pytest.approx(1.0)
    assert math.isnan(average_precision([0, 1], QueryTruth.of([])))


def test_ties_are_broken_by_lower_id() -> None:
    scores = np.array([[0.5, 0.9, 0.5, 0.9], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    assert rank(scores).tolist() == [[1, 3, 0, 2], [0, 1, 2, 3]]
    # ids 0 and 1 tie at the top: id 0 ranks first, so positive {1} sits at r=1:
    # trapezoidal (0/1 + 1/2)/2 = 1/4, whereas positive {0} is at r=0 -> 1
    tied = np.array([[0.9, 0.9, 0.1]])
    result = evaluate([QueryTruth.of([1])], scores=tied)
    assert result.mean_ap == pytest.approx(0.25)
    assert evaluate([QueryTruth.of([0])], scores=tied).mean_ap == pytest.approx(1.0)


def test_rank_rejects_non_matrix() -> None:
    with pytest.raises(ConfigError):
        rank(np.zeros(3))


# --- P@k, R@k, revisitop mP@k, N-S ------------------------------------------------------------


def test_precision_and_recall_at_k() -> None:
    # ranking 0 1 2 3 4, junk {1} -> 0 2 3 4; positives {0, 2, 4}
    truth = QueryTruth.of([0, 2, 4], junk=[1])
    ranking = [0, 1, 2, 3, 4]
    assert precision_at_k(ranking, truth, 1) == 1.0
    assert precision_at_k(ranking, truth, 2) == 1.0  # 0, 2
    assert precision_at_k(ranking, truth, 3) == pytest.approx(2 / 3)  # 0, 2, 3
    assert recall_at_k(ranking, truth, 2) == pytest.approx(2 / 3)
    assert recall_at_k(ranking, truth, 4) == 1.0
    with pytest.raises(ConfigError):
        precision_at_k(ranking, truth, 0)


def test_revisited_precision_uses_rank_of_last_positive() -> None:
    # positives {0, 2} at 1-based positions 1, 3: kq = min(3, k)
    truth = QueryTruth.of([0, 2])
    ranking = [0, 1, 2, 3, 4, 5]
    assert revisited_precision_at_k(ranking, truth, 1) == 1.0  # kq=1: 1/1
    assert revisited_precision_at_k(ranking, truth, 5) == pytest.approx(2 / 3)  # kq=3: 2/3
    assert precision_at_k(ranking, truth, 5) == pytest.approx(2 / 5)  # plain P@5 differs
    assert revisited_precision_at_k([7, 8], truth, 5) == 0.0  # nothing retrieved


def test_ns_score_hand_cases() -> None:
    # two UKBench groups {0..3}, {4..7}; every image is a query, its group (itself too) relevant
    truths = [QueryTruth.of(range(4)), QueryTruth.of(range(4, 8))]
    rankings = [[0, 1, 4, 2, 3, 5, 6, 7], [4, 5, 6, 7, 0, 1, 2, 3]]
    # top 4 of query 0: 0 1 4 2 -> 3 relevant; query 1: 4 5 6 7 -> 4 relevant; mean 3.5
    assert ns_score(truths, rankings=rankings) == pytest.approx(3.5)
    result = evaluate(truths, rankings=np.array(rankings), ns=True)
    assert result.ns_score == pytest.approx(3.5)
    assert evaluate(truths, rankings=rankings).ns_score is None


# --- skipping, exclusion, evaluate ------------------------------------------------------------


def test_empty_positives_are_skipped_counted_and_named(caplog: pytest.LogCaptureFixture) -> None:
    truths = [QueryTruth.of([]), QueryTruth.of([0, 2])]
    rankings = [[0, 1, 2], [0, 1, 2]]
    with caplog.at_level(logging.WARNING, logger="retrieval.evaluation._metrics"):
        result = evaluate(truths, rankings=rankings, names=["lonely", "paired"])
    assert result.n_queries == 2
    assert result.n_skipped == 1
    assert result.skipped == ("lonely",)
    assert result.mean_ap == pytest.approx(19 / 24)  # only the second query counts
    assert math.isnan(result.average_precisions[0])
    assert result.mean_precision_at[5] == pytest.approx(2 / 3)
    assert "lonely" in caplog.text and "1 of 2" in caplog.text


def test_all_queries_skipped_gives_nan() -> None:
    result = evaluate([QueryTruth.of([])], rankings=[[0]])
    assert math.isnan(result.mean_ap)
    assert math.isnan(result.mean_precision_at[1])
    assert result.n_skipped == 1


def test_query_excluded_from_its_own_results() -> None:
    # leave-one-out: query is db id 0, ranks itself first; positive {2}
    # excluded: 1 2 -> r=1: (0 + 1/2)/2 = 1/4;  kept as a negative: r=2: (0 + 1/3)/2 = 1/6
    ranking = [0, 1, 2]
    assert average_precision(ranking, QueryTruth.of([2], exclude=[0])) == pytest.approx(1 / 4)
    assert average_precision(ranking, QueryTruth.of([2])) == pytest.approx(1 / 6)
    assert positive_ranks(ranking, {2}, {0}).tolist() == [1]


def test_positive_that_is_also_ignored_is_rejected() -> None:
    with pytest.raises(DatasetError):
        QueryTruth.of([1, 2], junk=[2])
    with pytest.raises(DatasetError):
        QueryTruth.of([1], exclude=[1])


def test_evaluate_argument_errors() -> None:
    truths = [QueryTruth.of([0])]
    with pytest.raises(ConfigError):
        evaluate(truths)
    with pytest.raises(ConfigError):
        evaluate(truths, scores=np.zeros((1, 2)), rankings=[[0, 1]])
    with pytest.raises(ConfigError):
        evaluate(truths, scores=np.zeros((2, 2)))
    with pytest.raises(ConfigError):
        evaluate(truths, rankings=[[0.5, 1.0]])
    with pytest.raises(UnknownNameError):
        evaluate(truths, rankings=[[0]], method="interpolated")  # type: ignore[arg-type]


def test_scores_and_their_rankings_evaluate_alike() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(6, 12)).astype(np.float32)  # many ties
    truths = [QueryTruth.of(rng.choice(12, 3, replace=False)) for _ in range(6)]
    by_scores = evaluate(truths, scores=scores)
    by_rankings = evaluate(truths, rankings=rank(scores))
    assert by_scores == by_rankings
    assert mean_average_precision(truths, scores=scores) == by_scores.mean_ap


# --- property tests against the naive references ----------------------------------------------

ROLES = st.sampled_from(["pos", "junk", "exclude", "neg"])


@st.composite
def ranked_truth(draw: st.DrawFn) -> tuple[list[int], dict[str, list[int]]]:
    n = draw(st.integers(1, 25))
    ranking = draw(st.permutations(list(range(n))))
    roles = draw(st.lists(ROLES, min_size=n, max_size=n))
    groups: dict[str, list[int]] = {r: [] for r in ["pos", "junk", "exclude", "neg"]}
    for i, role in enumerate(roles):
        groups[role].append(i)
    cut = draw(st.integers(1, n))  # a truncated top-k list is a ranking too
    return ranking[:cut], groups


@settings(max_examples=200, deadline=None)
@given(ranked_truth())
def test_ap_matches_naive_references(case: tuple[list[int], dict[str, list[int]]]) -> None:
    ranking, g = case
    truth = QueryTruth.of(g["pos"], junk=g["junk"], exclude=g["exclude"])
    if not g["pos"]:
        assert math.isnan(average_precision(ranking, truth))
        return
    ignored = set(g["junk"]) | set(g["exclude"])
    trapezoid = average_precision(ranking, truth)
    plain = average_precision(ranking, truth, method="non_interpolated")
    assert trapezoid == pytest.approx(oxford_compute_ap(set(g["pos"]), ignored, ranking), abs=1e-6)
    assert plain == pytest.approx(naive_non_interpolated(set(g["pos"]), ignored, ranking))
    assert 0.0 <= trapezoid <= plain + 1e-12 <= 1.0 + 1e-9


@settings(max_examples=200, deadline=None)
@given(ranked_truth(), st.sampled_from([1, 2, 5, 10]))
def test_mp_at_k_matches_revisitop(case: tuple[list[int], dict[str, list[int]]], k: int) -> None:
    ranking, g = case
    ignored = g["junk"] + g["exclude"]
    if not set(g["pos"]) & set(ranking):
        return  # revisitop cannot evaluate a list without any positive (max of empty)
    truth = QueryTruth.of(g["pos"], junk=g["junk"], exclude=g["exclude"])
    expected = revisitop_pk(ranking, g["pos"], ignored, k)
    assert revisited_precision_at_k(ranking, truth, k) == pytest.approx(expected)
