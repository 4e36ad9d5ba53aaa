"""The first stage of near-duplicates: each image's candidates, global cosine ≥ a threshold.

:func:`candidates` reads them from the kept neighbour graph where the store keeps one
(:class:`~retrieval.index._protocol.KeepsGraph`: raw cosines, exact, no search). An image's kept
top-``k`` row is its complete candidate list when the row is not full above the threshold: its
``k``-th (last) cosine is below the threshold, or the image has fewer than ``k`` neighbours in
all, or the row already holds the ``cap`` best. Only an image whose row is full above the
threshold, and narrower than ``cap``, is searched again with
:meth:`~retrieval.index.KeepsLayouts.range_search`. Stores without a graph (Milvus) range-search
every image.

Both paths answer the same: per image, the best ``cap`` other images at or above the threshold,
best first (ties by the lower id in the graph, by FAISS's order in a search), where FAISS holds
the raw vectors. With DBA, FAISS holds the augmented ones, so a range search scores the raw
vector against those: the graph's rows (raw against raw) are then the exact answer and the
fallback an approximation of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrieval.index._protocol import IndexStore, KeepsGraph, KeepsLayouts

__all__ = ["Candidates", "candidates"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Candidates:
    """``found[i]``: (ids, global cosines) of image ``ids[i]``'s candidates, itself left out;
    ``searched``: the images whose candidates a range search found (the rest: the graph)."""

    ids: list[int]
    found: list[tuple[I64, F64]]
    searched: list[int]


def candidates(index: IndexStore, store: KeepsLayouts, ids: Sequence[int], threshold: float,
               cap: int) -> Candidates:
    """The candidates of the stored images ``ids`` (module docstring)."""
    wanted = [int(i) for i in ids]
    found: dict[int, tuple[I64, F64]] = {}
    search = wanted
    if isinstance(index, KeepsGraph) and index.graph_k > 0 and wanted:
        rows = index.neighbours(wanted)
        full = (rows.I[:, -1] >= 0) & (rows.D[:, -1] >= threshold) if rows.k < cap \
            else np.zeros(len(wanted), dtype=bool)
        search = [i for i, f in zip(wanted, full.tolist(), strict=True) if f]
        for i, row_i, row_d, f in zip(wanted, rows.I, rows.D, full.tolist(), strict=True):
            if not f:
                keep = (row_i >= 0) & (row_d >= threshold)
                found[i] = (row_i[keep][:cap].astype(np.int64),
                            row_d[keep][:cap].astype(np.float64))
    if search:
        # cap + 1: the image itself is among its own hits
        hits = store.range_search(index.stored_vectors(search), threshold, cap + 1)
        for i, (hit_ids, scores) in zip(search, hits, strict=True):
            other = hit_ids != i
            found[i] = (hit_ids[other][:cap].astype(np.int64),
                        scores[other][:cap].astype(np.float64))
    return Candidates(wanted, [found[i] for i in wanted], search)
