"""The one row L2-normalisation and the combination of scales."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval._arrays import l2_normalize_rows
from retrieval.rerank import combine_scales, l2n
from tests.retrieval.rerank.references import unit


def test_l2n_hand_example_zero_rows_stay_zero() -> None:
    got = l2n(np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]]))
    assert got.dtype == np.float32
    assert got.tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0], [0.0, -1.0]]
    np.testing.assert_allclose(l2n(np.array([1.0, 1.0])), [2**-0.5, 2**-0.5], atol=1e-7)


def test_the_arrays_spelling_is_the_same_function() -> None:
    assert l2_normalize_rows is l2n


def test_combine_scales_hand_example() -> None:
    a = np.array([[1.0, 0.0]], dtype=np.float32)
    b = np.array([[0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(combine_scales([a, b]), [[2**-0.5, 2**-0.5]], atol=1e-7)


def test_combine_scales_matches_the_sum_normalised() -> None:
    a, b, c = (unit(4, 5, s).astype(np.float32) for s in (2, 3, 4))
    s = a.astype(np.float64) + b + c
    np.testing.assert_allclose(combine_scales([a, b, c]),
                               s / np.linalg.norm(s, axis=1)[:, None], atol=1e-6)
    assert combine_scales([a]) is a
    with pytest.raises(ValueError):
        combine_scales([])
