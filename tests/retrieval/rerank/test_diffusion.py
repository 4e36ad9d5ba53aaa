"""Diffusion: conjugate gradient against the dense solve, the affinity against its definition
written out loop by loop, shortlist growth, the settings, and the strict protocol against a
database rebuilt without the query."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.errors import ConfigError
from retrieval.rerank import Diffusion, diffused_rankings, knn_graph
from retrieval.rerank._diffusion import affinity, conjugate_gradient, diffuse, grow_shortlist
from retrieval.rerank._graph import NeighbourGraph


def _clustered(n: int, d: int, seed: int, clusters: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.8 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _reference_affinity(x: np.ndarray, graph: NeighbourGraph, k: int, gamma: float,
                        candidates: int) -> np.ndarray:
    """The dense normalised mutual kNN affinity, by loops over the definition."""
    ids = graph.ids.tolist()
    n = len(ids)
    chosen: list[set[int]] = []
    for i in range(n):
        cand = [ids.index(j) for j in graph.I[i, :candidates].tolist() if j in ids]
        cand = [j for j in cand if j != i]
        cand.sort(key=lambda j: (-float(np.dot(x[i].astype(float), x[j].astype(float))), j))
        chosen.append(set(cand[:k]))
    w = np.zeros((n, n))
    for i in range(n):
        for j in chosen[i]:
            if i in chosen[j]:
                w[i, j] = max(float(np.dot(x[i].astype(float), x[j].astype(float))), 0.0) ** gamma
    deg = w.sum(axis=1)
    inv = np.array([1 / np.sqrt(v) if v > 0 else 0.0 for v in deg])
    return w * inv[:, None] * inv[None, :]


def test_affinity_equals_its_definition() -> None:
    x = _clustered(40, 8, seed=1)
    ids = np.arange(100, 140, dtype=np.int64)
    graph = knn_graph(x, ids, 12)
    shortlist = NeighbourGraph(ids[5:35], graph.I[5:35], graph.D[5:35])  # cut: rows point out
    s = affinity(shortlist, x[5:35], k=6, gamma=3.0, candidates=10)
    dense = s.dense()
    np.testing.assert_allclose(dense, _reference_affinity(x[5:35], shortlist, 6, 3.0, 10),
                               atol=1e-6)  # the kernel takes the edge products in float32
    np.testing.assert_allclose(dense, dense.T, atol=1e-15)


def test_conjugate_gradient_equals_the_dense_solve() -> None:
    x = _clustered(60, 8, seed=2)
    ids = np.arange(60, dtype=np.int64)
    s = affinity(knn_graph(x, ids, 10), x, k=10, gamma=3.0, candidates=10)
    y = np.zeros(60)
    y[[3, 17, 40]] = [0.9, 0.5, 0.2]
    for alpha in (0.5, 0.9, 0.99):
        f = conjugate_gradient(s, y, alpha, iterations=500, tolerance=1e-12)
        exact = np.linalg.solve(np.eye(60) - alpha * s.dense(), y)
        np.testing.assert_allclose(f, exact, atol=1e-6 * np.abs(exact).max())


def test_diffuse_ranks_by_the_solution_and_seeds_from_the_query() -> None:
    x = _clustered(50, 8, seed=3)
    ids = np.arange(1000, 1050, dtype=np.int64)
    params = Diffusion(k=8, candidates=8, kq=2, iterations=400, tolerance=1e-12)
    q = x[7].astype(np.float64) + 0.05
    ranked, f = diffuse(q, knn_graph(x, ids, 8), x, params)
    s = affinity(knn_graph(x, ids, 8), x, 8, 3.0, 8).dense()
    sims = x.astype(np.float64) @ q
    y = np.zeros(50)
    top = np.argsort(-sims, kind="stable")[:2]
    y[top] = sims[top] ** 3
    exact = np.linalg.solve(np.eye(50) - 0.99 * s, y)
    np.testing.assert_allclose(f, np.sort(exact)[::-1], atol=1e-6 * exact.max())
    assert ranked[0] == ids[int(np.argmax(exact))]
    assert sorted(ranked.tolist()) == ids.tolist()


def _chain(n: int) -> NeighbourGraph:
    """i's neighbours: i+1, i-1 (ids 0..n-1; -1 padded)."""
    ids = np.arange(n, dtype=np.int64)
    nb = np.stack([ids + 1, ids - 1], axis=1)
    nb[nb >= n] = -1
    return NeighbourGraph(ids, nb, np.where(nb >= 0, 0.5, -np.inf))


def test_shortlist_grows_hop_by_hop_up_to_its_cap() -> None:
    graph = _chain(20)
    calls: list[list[int]] = []

    def rows(ids: np.ndarray) -> NeighbourGraph:
        calls.append(ids.tolist())
        part = graph.rows_of(ids)
        return NeighbourGraph(ids, graph.I[part], graph.D[part])

    got = grow_shortlist([10], rows, k=2, hops=2, cap=100)
    assert got.ids.tolist() == [10, 11, 9, 12, 8] and calls == [[10], [11, 9], [12, 8]]
    assert grow_shortlist([10, -1, 10], rows, k=2, hops=5, cap=4).ids.tolist() == [10, 11, 9, 12]
    assert grow_shortlist([10], rows, k=1, hops=3, cap=100).ids.tolist() == [10, 11, 12, 13]
    np.testing.assert_array_equal(got.I, graph.I[[10, 11, 9, 12, 8]])


def test_strict_protocol_equals_a_database_without_the_query() -> None:
    x = _clustered(45, 8, seed=4)
    params = Diffusion(k=5, candidates=7, kq=2)
    loo = diffused_rankings(x, x, list(range(45)), diffusion=params, qe_k=2, dba_k=2)
    for j in (0, 13, 44):
        keep = np.array([i for i in range(45) if i != j])
        alone = diffused_rankings(x[j:j + 1], x[keep], [None], diffusion=params, qe_k=2,
                                  dba_k=2)
        assert loo[j].tolist() == [*keep[alone[0]].tolist(), j]


def test_settings_are_validated_and_parsed() -> None:
    assert Diffusion.parse("off") is None
    assert Diffusion.parse("on") == Diffusion()
    base = Diffusion(k=10)
    assert Diffusion.parse("on", base) is base
    assert Diffusion.parse("kq=5, alpha=0.9", base) == Diffusion(k=10, kq=5, alpha=0.9)
    assert Diffusion.from_dict(Diffusion(gamma=2).to_dict()) == Diffusion(gamma=2)
    assert Diffusion(k=30).label == "diff(k=30)" and Diffusion().label == "diff"
    for bad, match in [("alpha=1", "alpha"), ("k=0", "'k'"), ("k=2.5", "integer"),
                       ("beta=1", "unknown diffusion parameter"), ("k", "name=value"),
                       ("tolerance=nan", "finite")]:
        with pytest.raises(ConfigError, match=match):
            Diffusion.parse(bad)
    with pytest.raises(ConfigError, match="'iterations'"):
        Diffusion(iterations=True)  # type: ignore[arg-type]
