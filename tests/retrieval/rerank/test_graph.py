import numpy as np

from retrieval.rerank import knn_graph, l2n


def test_knn_graph_matches_brute_force_and_excludes_self() -> None:
    rng = np.random.default_rng(3)
    x = l2n(rng.normal(size=(40, 8)))
    ids = np.arange(100, 140, dtype=np.int64)[::-1].copy()
    g = knn_graph(x, ids, 5)
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    for r in range(40):
        s = sims[r].copy()
        s[r] = -np.inf
        best = np.argsort(-s, kind="stable")[:5]
        assert set(g.I[r].tolist()) == set(ids[best].tolist())
        assert ids[r] not in g.I[r]
        np.testing.assert_allclose(g.D[r], np.sort(s)[::-1][:5], rtol=0, atol=1e-12)
    assert g.k == 5 and len(g) == 40


def test_rows_of_finds_ids_and_marks_unknown() -> None:
    x = l2n(np.eye(4))
    g = knn_graph(x, np.array([7, 3, 9, 1]), 2)
    assert g.rows_of([9, 1, 5, 7]).tolist() == [2, 3, -1, 0]
    assert knn_graph(np.zeros((0, 4)), np.zeros(0), 2).rows_of([1]).tolist() == [-1]


def test_short_collection_pads_missing_neighbours() -> None:
    g = knn_graph(l2n(np.eye(3)), np.array([1, 2, 3]), 4)
    assert (g.I[:, 2:] == -1).all() and np.isneginf(g.D[:, 2:]).all()
