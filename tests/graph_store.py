"""A test-only store that keeps a neighbour graph: the designed seam of diffusion serving.

No index on this branch implements :class:`~retrieval.index.KeepsGraph` yet; :class:`GraphKeeping`
wraps a real store and answers ``neighbours(ids)`` with the *exact* graph of its stored (raw)
vectors (:func:`~retrieval.rerank.knn_graph`, what a kept graph must equal), everything else
delegated to the real store.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import numpy as np

from retrieval import Collection
from retrieval.index import IndexStore
from retrieval.rerank import NeighbourGraph, knn_graph


class GraphKeeping:
    """``inner`` plus ``graph_k`` and ``neighbours`` (the graph recomputed on each call)."""

    def __init__(self, inner: IndexStore, graph_k: int) -> None:
        self._inner = inner
        self.graph_k = graph_k

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def neighbours(self, ids: Sequence[int]) -> NeighbourGraph:
        stored = self._inner.ids_after(0, 10**9)
        graph = knn_graph(self._inner.stored_vectors(stored), stored, self.graph_k)
        want = np.asarray(list(ids), dtype=np.int64)
        rows = graph.rows_of(want)
        found = rows >= 0
        nb = np.full((len(want), self.graph_k), -1, dtype=np.int64)
        sims = np.full((len(want), self.graph_k), -np.inf)
        nb[found], sims[found] = graph.I[rows[found]], graph.D[rows[found]]
        return NeighbourGraph(want, nb, sims)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> GraphKeeping:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def keeping_graph(collection: Collection, graph_k: int) -> Collection:
    """``collection`` with its store wrapped in :class:`GraphKeeping`."""
    return Collection(collection.path, GraphKeeping(collection.index, graph_k),  # type: ignore[arg-type]
                      collection.embedder)
