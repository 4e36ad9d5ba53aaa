"""Diffusion re-ranking of an index search, on the graph the store keeps.

:func:`graph_of` is the one place serving reads the collection's kNN graph: it needs a store
that :class:`~retrieval.index._protocol.KeepsGraph` (``graph_k``, ``neighbours(ids)``) and says
plainly when the store keeps none. :func:`diffused_hits` then runs the kernel the evaluation
runs (:func:`retrieval.rerank.diffusion_ranking`): the query's first ``k`` hits, grown through
the graph, ranked by diffusion over the vectors FAISS searched (DBA-augmented where the index has
DBA); the hits beyond the shortlist follow in FAISS order with score 0 (diffusion reached none
of them). A hit's score is its diffusion value ``f``: comparable within one query, not a cosine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError
from retrieval.index._protocol import AugmentsVectors, IndexStore, KeepsGraph
from retrieval.index._records import Hit
from retrieval.rerank import Diffusion, NeighbourGraph, diffusion_ranking, without

__all__ = ["NO_GRAPH", "diffused_hits", "graph_of"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

NO_GRAPH = "this index keeps no neighbour graph: rebuild with --graph-k {k}"


def graph_of(index: IndexStore, params: Diffusion) -> Callable[[I64], NeighbourGraph]:
    """``ids -> their rows of the kept graph`` (``store.neighbours``); :class:`ConfigError`
    (HTTP 422, CLI exit 2) when the store keeps no graph or a graph too narrow for ``params``."""
    need = max(params.k, params.candidates)
    if not isinstance(index, KeepsGraph) or not index.graph_k:
        raise ConfigError(NO_GRAPH.format(k=need))
    if index.graph_k < params.k:
        raise ConfigError(f"diffusion k={params.k} needs a graph of at least {params.k} "
                          f"neighbours; this index keeps {index.graph_k}: rebuild with "
                          f"--graph-k {need} or pass a smaller k")
    store = index

    def rows(ids: I64) -> NeighbourGraph:
        return store.neighbours([int(i) for i in ids])
    return rows


def _searched(index: IndexStore) -> Callable[[I64], F32]:
    """``ids -> the vectors FAISS compares against`` (DBA-augmented where the index keeps DBA)."""
    def vectors(ids: I64) -> F32:
        if not len(ids):
            return np.zeros((0, index.d), dtype=np.float32)
        wanted = [int(i) for i in ids]
        return (index.indexed_vectors(wanted) if isinstance(index, AugmentsVectors)
                else index.stored_vectors(wanted))
    return vectors


def _restricted(rows: Callable[[I64], NeighbourGraph], exclude: int | None,
                among: Sequence[int] | None) -> Callable[[I64], NeighbourGraph]:
    """Graph rows without ``exclude`` and (with a filter) without the ids outside ``among``."""
    allowed = None if among is None else np.asarray(sorted(set(among)), dtype=np.int64)

    def restricted(ids: I64) -> NeighbourGraph:
        graph = rows(ids)
        gone = np.asarray([] if exclude is None else [exclude], dtype=np.int64)
        if allowed is not None:
            outside = graph.I[(graph.I >= 0) & ~np.isin(graph.I, allowed)]
            gone = np.concatenate([gone, np.unique(outside)])
        return without(graph, gone, graph.k) if len(gone) else graph
    return restricted


def diffused_hits(index: IndexStore, queries: F32, k: int, params: Diffusion, *,
                  exclude: int | None = None, among: Sequence[int] | None = None,
                  offset: int = 0) -> list[list[Hit]]:
    """The window ``offset … offset + k`` of each query's diffusion ranking, best first."""
    rows = _restricted(graph_of(index, params), exclude, among)
    vectors = _searched(index)
    extra = 0 if exclude is None else 1
    _, first = index.search(queries, params.k + extra, ids=among)
    out = []
    for q, hits in zip(queries, first, strict=True):
        start = hits[(hits >= 0) & (hits != (exclude if exclude is not None else -2))]
        ranked, f = diffusion_ranking(q, start[:params.k], rows, vectors, params)
        ids, scores = ranked.tolist(), f.tolist()
        if len(ids) < offset + k:  # the rest in FAISS order, after the shortlist
            _, more = index.search(q[None], offset + k + len(ids) + extra, ids=among)
            seen = set(ids) | ({exclude} if exclude is not None else set())
            tail = [int(i) for i in more[0] if i >= 0 and int(i) not in seen]
            ids, scores = ids + tail, scores + [0.0] * len(tail)
        window = list(zip(ids, scores, strict=True))[offset:offset + k]
        records = {r.id: r for r in index.records([i for i, _ in window])}
        out.append([Hit(i, float(s), records[i]) for i, s in window if i in records])
    return out
