"""Diffusion rankings under the strict evaluation protocol (:mod:`retrieval.rerank._protocol`).

Per query: the database it sees has DBA computed without it (``dba_k`` > 0), the collection's kNN
graph over the *raw* vectors without it (built once with one neighbour more, the query's id then
dropped from every row: exactly the graph of the database without the query), the query after
αQE (``qe_k`` > 0) seeds :func:`~retrieval.rerank._diffusion.diffusion_ranking` — the function an
index's search calls — and the images outside the shortlist follow by cosine. A query outside
the database (``own`` None) sees what searching an index built with these settings sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from retrieval.rerank._diffusion import diffusion_ranking
from retrieval.rerank._graph import NeighbourGraph, knn_graph
from retrieval.rerank._neighbours import top_k
from retrieval.rerank._protocol import _Database, query_vector, strict_databases
from retrieval.rerank._settings import Diffusion

__all__ = ["diffused_rankings", "without"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def without(graph: NeighbourGraph, gone: npt.ArrayLike, k: int) -> NeighbourGraph:
    """``graph`` with the ids ``gone`` removed from every row (the rest move up), ``k`` wide."""
    drop = np.isin(graph.I, np.asarray(gone, dtype=np.int64)) | (graph.I < 0)
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]
    ids = np.take_along_axis(np.where(drop, -1, graph.I), order, axis=1)
    sims = np.take_along_axis(np.where(drop, -np.inf, graph.D), order, axis=1)
    if ids.shape[1] < k:
        pad = ((0, 0), (0, k - ids.shape[1]))
        ids, sims = np.pad(ids, pad, constant_values=-1), np.pad(sims, pad,
                                                                 constant_values=-np.inf)
    return NeighbourGraph(graph.ids, ids, sims)


def diffused_rankings(xq: npt.ArrayLike, xb: npt.ArrayLike, own: Sequence[int | None], *,
                      diffusion: Diffusion, qe_k: int = 0, qe_alpha: float = 3.0,
                      dba_k: int = 0, dba_alpha: float = 3.0) -> I64:
    """Rankings (nq, nb) of database rows after αQE, DBA and diffusion, strict protocol: the
    shortlist by diffusion, the rest by cosine, the query's own row (``own[i]``) last."""
    b = np.asarray(xb, dtype=np.float32)
    q = np.asarray(xq, dtype=np.float64)
    rows = np.arange(len(b), dtype=np.int64)
    width = max(diffusion.k, diffusion.candidates)
    graph = knn_graph(b, rows, width + 1)
    databases = strict_databases(b, own, dba_k, dba_alpha)
    out = np.empty((len(q), len(b)), dtype=np.int64)
    for i, j in enumerate(own):
        db = databases.of(j)
        v = query_vector(q[i], db, j, qe_k, qe_alpha)
        s = db.scores(v)
        if j is not None:
            s[j] = -np.inf
        first, _ = top_k(s[None], rows, diffusion.k)
        gone = np.asarray([] if j is None else [j], dtype=np.int64)
        rows_of = _rows_without(graph, gone, width)

        def vectors(ids: I64, db: _Database = db) -> F32:
            return db.rows(ids).astype(np.float32)

        ranked, _ = diffusion_ranking(v, first[0][first[0] >= 0], rows_of, vectors, diffusion)
        out[i] = _complete(ranked, s, j)
    return out


def _rows_without(graph: NeighbourGraph, gone: I64, k: int) -> Callable[[I64], NeighbourGraph]:
    def rows_of(ids: I64) -> NeighbourGraph:
        part = graph.rows_of(ids)
        return without(NeighbourGraph(ids, graph.I[part], graph.D[part]), gone, k)
    return rows_of


def _complete(ranked: I64, s: F64, j: int | None) -> I64:
    """``ranked`` then every other row by score (ties: lower row), row ``j`` last."""
    rest = np.ones(len(s), dtype=bool)
    rest[ranked] = False
    if j is not None:
        rest[j] = False
    tail = np.flatnonzero(rest)
    tail = tail[np.lexsort((tail, -s[tail]))]
    return np.concatenate([ranked, tail, [] if j is None else [j]]).astype(np.int64)
