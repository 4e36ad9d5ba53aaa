"""The diffusion bench's graph is the exact one at small sizes, and a run reports what it says
(no timing is asserted: speed targets live in the bench's own results)."""

from __future__ import annotations

import numpy as np

from bench.diffusion import _graph, _one_size
from bench.vectors import clustered
from retrieval.rerank import Diffusion, knn_graph


def test_small_graph_is_exact() -> None:
    xb = clustered(300, seed=5)
    graph, _ = _graph(xb, 12)
    exact = knn_graph(xb, np.arange(300), 12)
    same = (graph.I == exact.I).mean()
    assert same > 0.99  # float32 FAISS vs float64 reference: only near-ties may swap
    assert not (np.arange(300)[:, None] == graph.I).any()


def test_one_size_reports_every_figure() -> None:
    params = Diffusion(shortlist=100)
    got = _one_size(300, 5, params)
    assert got["n"] == 300 and got["queries"] == 5 and got["graph_exact"]
    assert 0 < got["shortlist_mean"] <= 100
    assert got["total_ms_p50"] >= got["diffusion_ms_p50"] > 0
