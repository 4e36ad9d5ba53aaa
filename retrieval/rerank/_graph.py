"""The collection's k-nearest-neighbour graph: the one shape DBA, diffusion and near-duplicate
candidates read, whether it was kept by an index (incrementally) or built here (exactly).

A :class:`NeighbourGraph` holds, for each record id in ``ids`` (row order), its top-k neighbours
by raw cosine, itself excluded: ``I`` (n, k) neighbour *ids* (-1 where there is none) and ``D``
(n, k) their cosines (``-inf`` where there is none), best first, ties by the lower id — exactly
what :func:`knn_graph` gives, so a kept graph can be compared with a fresh exact one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrieval.rerank._neighbours import top_k

__all__ = ["NeighbourGraph", "knn_graph"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_CHUNK = 2048


@dataclass(frozen=True)
class NeighbourGraph:
    """Top-k neighbours (ids ``I``, cosines ``D``) of every id in ``ids``, best first."""

    ids: I64
    I: I64  # noqa: E741 - the faiss name
    D: F64

    @property
    def k(self) -> int:
        return int(self.I.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def rows_of(self, ids: npt.ArrayLike) -> I64:
        """Row positions of ``ids`` in this graph (-1 for an id it does not hold)."""
        want = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not len(self.ids):
            return np.full(len(want), -1, dtype=np.int64)
        order = np.argsort(self.ids, kind="stable")
        pos = np.clip(np.searchsorted(self.ids[order], want), 0, len(self.ids) - 1)
        return np.where(self.ids[order][pos] == want, order[pos], -1).astype(np.int64)

def knn_graph(xb: npt.ArrayLike, ids: npt.ArrayLike, k: int) -> NeighbourGraph:
    """The exact graph of ``xb`` (n, d, L2-normalised) labelled ``ids``: brute force in float64,
    chunked; the reference a kept graph must equal."""
    x = np.asarray(xb, dtype=np.float64)
    labels = np.asarray(ids, dtype=np.int64)
    out_i, out_d = [], []
    for start in range(0, len(x), _CHUNK):
        sims = x[start:start + _CHUNK] @ x.T
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf
        ti, td = top_k(sims, labels, k)
        out_i.append(ti)
        out_d.append(td)
    if not out_i:
        return NeighbourGraph(labels, np.zeros((0, k), np.int64), np.zeros((0, k)))
    return NeighbourGraph(labels, np.concatenate(out_i), np.concatenate(out_d))
