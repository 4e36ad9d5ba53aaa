"""DBA (:func:`dba`, :class:`DbaState`) against hand-worked cases and a brute-force loop; the ids an
add or a remove reports are exactly those whose augmented vector changed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.rerank import DbaState, dba
from tests.retrieval.rerank.references import brute_dba, neighbour_ids, unit


def l2(v: list[float]) -> np.ndarray:
    a = np.array(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def test_hand_worked_three_vectors() -> None:
    # x0·x1 = 0.6, x1·x2 = 0.8, x0·x2 = 0; k = 1, α = 1
    x = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    expected = [l2([1 + 0.6 * 0.6, 0.6 * 0.8]),   # x0 + 0.6 x1
                l2([0.6, 0.8 + 0.8]),             # x1 + 0.8 x2
                l2([0.8 * 0.6, 1 + 0.8 * 0.8])]   # x2 + 0.8 x1
    np.testing.assert_allclose(dba(x, 1, 1.0), expected, atol=1e-7)


def test_negative_cosines_weigh_nothing() -> None:
    # cos(x0, x1) = -0.6: unclipped, α = 3 would add -0.216 x1; clipped, x0 stays as it is
    x = np.array([[1.0, 0.0], [-0.6, 0.8]])
    np.testing.assert_allclose(dba(x, 1, 3.0), x, atol=1e-7)


def test_ties_go_to_the_lower_id_whatever_the_order_added() -> None:
    # x1 and x2 are equally close to x0: its one neighbour is the lower id, 3, added last
    x0, a, b = [1.0, 0.0], [0.6, 0.8], [0.6, -0.8]
    state = DbaState(1, 1.0)
    state.add(np.array([7, 9, 3]), np.array([x0, a, b]))
    np.testing.assert_allclose(state.augmented([7])[0], l2([1 + 0.36, -0.48]), atol=1e-7)
    assert state.nn_ids[0].tolist() == [3]


@pytest.mark.parametrize("k", [1, 2, 5])
def test_dba_matches_brute_force(k: int) -> None:
    x = unit(25, 6, 2)
    np.testing.assert_allclose(dba(x, k, 3.0), brute_dba(x, k, 3.0), atol=1e-6)


def test_dba_with_fewer_vectors_than_k() -> None:
    x = unit(2, 4, 3)
    np.testing.assert_allclose(dba(x, 5, 3.0), brute_dba(x, 5, 3.0), atol=1e-6)
    np.testing.assert_allclose(dba(x[:1], 2, 3.0), x[:1], atol=1e-6)


def test_incremental_dba_equals_fresh() -> None:
    x = unit(60, 8, 4)
    ids = np.arange(100, 160, dtype=np.int64)
    state = DbaState(2, 3.0)
    state.add(ids[:20], x[:20])
    for lo in range(20, 60, 10):
        affected = state.add(ids[lo:lo + 10], x[lo:lo + 10])
        assert set(ids[lo:lo + 10].tolist()) <= affected
    gone = [103, 117, 150, 151, 159, 999]
    state.remove(gone)
    keep = ~np.isin(ids, gone)
    fresh = DbaState(2, 3.0)
    fresh.add(ids[keep][::-1].copy(), x[keep][::-1].copy())  # another order, same result
    np.testing.assert_allclose(state.augmented(ids[keep]), fresh.augmented(ids[keep]), atol=1e-6)
    np.testing.assert_allclose(state.augmented(ids[keep]), brute_dba(x[keep], 2, 3.0), atol=1e-6)


def changed_ids(ids: list[int], before: np.ndarray, after: np.ndarray) -> set[int]:
    return {i for i, a, b in zip(ids, after, before, strict=True) if not np.allclose(a, b)}


def test_remove_reports_exactly_the_changed() -> None:
    x = unit(30, 5, 5)
    ids = list(range(30))
    state = DbaState(2, 3.0)
    state.add(np.array(ids), x)
    counts = np.bincount(np.ravel(neighbour_ids(x, ids, 2)), minlength=30)
    victim = int(np.argmax(counts))  # the vector most others have among their neighbours
    affected = state.remove([victim])
    rest = [i for i in ids if i != victim]
    changed = changed_ids(rest, brute_dba(x, 2, 3.0)[rest], brute_dba(x[rest], 2, 3.0))
    assert affected == changed
    assert 0 < len(changed) < len(rest)  # the case says something


def test_add_reports_exactly_the_changed_and_the_new() -> None:
    x = unit(40, 5, 6)
    old, new = list(range(30)), list(range(30, 40))
    state = DbaState(2, 3.0)
    state.add(np.array(old), x[:30])
    affected = state.add(np.array(new), x[30:])
    changed = changed_ids(old, brute_dba(x[:30], 2, 3.0), brute_dba(x, 2, 3.0)[:30])
    assert affected == changed | set(new)
    assert 0 < len(changed) < len(old)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(2, 12))
def test_left_out_is_the_dba_without_that_vector(seed: int, k: int, n: int) -> None:
    x = unit(n, 3, seed, power=2.0)
    state = DbaState(k, 3.0)
    state.add(np.arange(n), x)
    base = brute_dba(x, k, 3.0)
    j = seed % n
    changed, patch = state.left_out(j)
    keep = [r for r in range(n) if r != j]
    without = brute_dba(x[keep], k, 3.0)
    full = state.augmented(np.arange(n))
    full[changed] = patch
    np.testing.assert_allclose(full[keep], without, atol=1e-6)
    had_j = {r for r, nb in enumerate(neighbour_ids(x, list(range(n)), k)) if j in nb}
    assert set(changed.tolist()) == had_j  # exactly the vectors that had j among their top-k
    # every vector that differs is among them (one with j at weight ~0 may not differ visibly)
    assert changed_ids(keep, base[keep], without) <= had_j
    assert len(state) == n  # the state itself is unchanged
    np.testing.assert_allclose(state.augmented(np.arange(n)), base, atol=1e-6)
