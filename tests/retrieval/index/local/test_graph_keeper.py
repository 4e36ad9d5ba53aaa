"""The in-memory graph keeper against :func:`knn_graph` where float32 candidates cannot decide:
exact ties among many duplicates, near-ties finer than float32; and its approximate mode."""

from __future__ import annotations

import faiss
import numpy as np

from retrieval.index.local._graph import GraphKeeper
from retrieval.rerank import knn_graph


def kept_equals_reference(keeper: GraphKeeper, x: np.ndarray, ids: np.ndarray) -> None:
    ref = knn_graph(x, ids, keeper.k)
    kept = keeper.neighbours(ids.tolist())
    np.testing.assert_array_equal(kept.I, ref.I)
    np.testing.assert_allclose(kept.D, ref.D, rtol=0, atol=1e-12)


def test_ties_among_many_duplicates_go_to_the_lowest_ids() -> None:
    # 60 copies of one vector among others: float32 search returns copies in no useful order,
    # so a copy's 2 neighbours (the 2 lowest other copies) need more than the first candidates
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 0.0, 1.0], size=(200, 8)).astype(np.float32)
    x[rng.choice(200, 60, replace=False)] = x[0]
    ids = rng.permutation(np.arange(1000, 1200)).astype(np.int64)
    keeper = GraphKeeper(2, 8)
    keeper.apply(keeper.plan([], ids[:150], x[:150]))
    keeper.apply(keeper.plan([], ids[150:], x[150:]))
    kept_equals_reference(keeper, x, ids)
    live = np.ones(200, dtype=bool)
    live[::7] = False
    keeper.apply(keeper.plan(ids[~live].tolist(), [], np.zeros((0, 8), np.float32)))
    kept_equals_reference(keeper, x[live], ids[live])


def test_near_ties_finer_than_float32_are_ranked_in_float64() -> None:
    # x0·xi = 0.5 + 2^-10 + i·2^-33: one float32 value for every i, distinct (and exact) in
    # float64; xi·xj = 2.25 + (i + j)·2^-23 + ij·2^-46 likewise
    d, n = 4, 300
    x = np.zeros((n, d), dtype=np.float32)
    x[0] = [1.0, 2.0 ** -10, 0.0, 0.0]
    x[1:, 0] = 0.5
    x[1:, 1] = 1.0 + np.arange(n - 1) * 2.0 ** -23
    x[1:, 2] = 1.0
    ids = np.arange(1, n + 1, dtype=np.int64)
    keeper = GraphKeeper(3, d)
    keeper.apply(keeper.plan([], ids, x))
    kept_equals_reference(keeper, x, ids)


def test_approximate_mode_ranks_what_the_index_finds_exactly() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(1, 3001, dtype=np.int64)
    hnsw = faiss.IndexHNSWFlat(16, 16, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efSearch = 128
    ann = faiss.IndexIDMap2(hnsw)
    calls = []

    def search(xq: np.ndarray, c: int) -> np.ndarray:
        calls.append(c)
        return ann.search(xq, c)[1]

    keeper = GraphKeeper(5, 16, exact_max=1000, ann=search)
    for start in range(0, 3000, 500):
        part = slice(start, start + 500)
        keeper.apply(keeper.plan([], ids[part], x[part]))
        ann.add_with_ids(x[part], ids[part])
    assert calls  # beyond 1000 vectors the index's own search proposed the candidates
    ref = knn_graph(x, ids, 5)
    kept = keeper.neighbours(ids.tolist())
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(kept.I, ref.I, strict=True)])
    assert recall > 0.95
    cos = np.einsum("nd,nkd->nk", x.astype(np.float64), x[kept.I - 1].astype(np.float64))
    np.testing.assert_allclose(kept.D, cos, atol=1e-12)  # found neighbours ranked exactly
    assert (np.diff(kept.D, axis=1) <= 0).all()
