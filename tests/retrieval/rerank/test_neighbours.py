"""top-k (ties by the lower id), the neighbour weights (clipped at 0) and the shared formula."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.rerank import expand, top_k, weights
from tests.retrieval.rerank.references import ranked


def test_top_k_hand_example_ties_by_the_lower_id() -> None:
    sims = np.array([[0.5, 0.9, 0.5, -np.inf, 0.1]])
    ids = np.array([40, 30, 20, 10, 0])
    got_ids, got_sims = top_k(sims, ids, 3)
    assert got_ids.tolist() == [[30, 20, 40]]  # 0.9, then the tie 0.5 by the lower id
    assert got_sims.tolist() == [[0.9, 0.5, 0.5]]


def test_top_k_pads_missing_and_excluded_slots() -> None:
    got_ids, got_sims = top_k(np.array([[0.2, -np.inf]]), np.array([5, 6]), 4)
    assert got_ids.tolist() == [[5, -1, -1, -1]]
    assert got_sims[0, 0] == 0.2 and np.isneginf(got_sims[0, 1:]).all()
    empty_ids, empty_sims = top_k(np.zeros((2, 0)), np.zeros(0, dtype=np.int64), 2)
    assert empty_ids.tolist() == [[-1, -1], [-1, -1]] and np.isneginf(empty_sims).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=12), st.integers(1, 6),
       st.integers(0, 2**32 - 1))
def test_top_k_equals_sorting_by_cosine_then_id(values: list[int], k: int, seed: int) -> None:
    sims = np.array([values], dtype=np.float64) / 3  # few distinct values: many ties
    ids = np.random.default_rng(seed).permutation(100)[:len(values)].astype(np.int64)
    got_ids, got_sims = top_k(sims, ids, k)
    expected = ranked([(float(s), int(i)) for s, i in zip(sims[0], ids, strict=True)])[:k]
    assert got_ids[0][:len(expected)].tolist() == [i for _, i in expected]
    assert got_sims[0][:len(expected)].tolist() == [s for s, _ in expected]
    assert (got_ids[0][len(expected):] == -1).all()


def test_weights_clip_at_zero_and_missing_weigh_nothing() -> None:
    w = weights(np.array([[0.5, -0.5, -np.inf, 1.0]]), 3.0)
    assert w.tolist() == [[0.125, 0.0, 0.0, 1.0]]


def test_expand_hand_example() -> None:
    # x = e0 with neighbours e1 (cos 0.5) and -e1 (cos -0.2, clipped), α = 1: l2n(1, 0.5)
    x = np.array([[1.0, 0.0]])
    nb = np.array([[[0.0, 1.0], [0.0, -1.0]]])
    got = expand(x, nb, [[0.5, -0.2]], 1.0)
    np.testing.assert_allclose(got, [[1 / 1.25**0.5, 0.5 / 1.25**0.5]], atol=1e-7)
    assert got.dtype == np.float32
    np.testing.assert_allclose(expand([[3.0, 4.0]], np.zeros((1, 0, 2)), np.zeros((1, 0)), 3.0),
                               [[0.6, 0.8]], atol=1e-7)
