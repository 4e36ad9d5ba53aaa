"""αQE against a brute-force loop and a hand-worked case."""

from __future__ import annotations

import numpy as np

from retrieval.rerank import aqe
from tests.retrieval.rerank.references import unit


def test_aqe_matches_brute_force() -> None:
    db, q = unit(30, 8, 0), unit(4, 8, 1)
    sims = q @ db.T
    nn = np.argsort(-sims, axis=1)[:, :3]
    got = aqe(q, db[nn], np.take_along_axis(sims, nn, axis=1), 3.0)
    for r in range(4):
        v = q[r] + sum(sims[r, i] ** 3 * db[i] for i in nn[r])
        np.testing.assert_allclose(got[r], v / np.linalg.norm(v), atol=1e-6)


def test_aqe_hand_example() -> None:
    # q = e0, one neighbour (1, 1)/√2 at cosine 1/√2, α = 2: q + 0.5·(1, 1)/√2, normalised
    q = np.array([[1.0, 0.0]])
    nb = np.array([[[2**-0.5, 2**-0.5]]])
    v = np.array([1 + 0.5 * 2**-0.5, 0.5 * 2**-0.5])
    np.testing.assert_allclose(aqe(q, nb, [[2**-0.5]], 2.0)[0], v / np.linalg.norm(v), atol=1e-6)


def test_a_missing_neighbour_adds_nothing() -> None:
    q = np.array([[0.6, 0.8]])
    nb = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    got = aqe(q, nb, [[0.6, -np.inf]], 1.0)
    v = np.array([0.6 + 0.6, 0.8])
    np.testing.assert_allclose(got[0], v / np.linalg.norm(v), atol=1e-7)
