"""Keeping FAISS's DBA-augmented vectors exact as images come and go: :class:`DbaKeeper`.

With DBA (``manifest.dba_k > 0``) the store keeps the raw vectors and FAISS the augmented ones
``l2n(x_j + Σ_{i ∈ top-k(j)} max(s_ij, 0)^α x_i)`` (:func:`~retrieval.rerank.expand`). The
neighbours come from the kept graph (:class:`~._graph.GraphKeeper`, whose first ``dba_k``
neighbours of each row are DBA's), so nothing is searched here: opening an index whose snapshot
is current costs no augmentation at all, and a refill (after a rebuild or a replayed change) costs
``n · k · d``. Each add or remove re-augments exactly the vectors whose first ``dba_k``
neighbours changed (the graph's delta says which), so the index always equals a fresh build.

FAISS types that cannot remove (HNSW) take DBA too: a removed vector is tombstoned (filtered
from every search, :class:`~._faiss.VectorIndex`), and a vector whose augmentation changed keeps
its previous one in the FAISS graph, marked *stale*: searches re-score stale hits with their
current augmented vector (:meth:`DbaKeeper.rescore`), so scores are exact and only the
candidates are found with the old vector. A snapshot never stores a stale vector: it rebuilds
the FAISS index from the current vectors first (so closing such an index after changes costs a
graph build), and tombstones are compacted at :data:`~._faiss.COMPACTION_RATIO` as without DBA.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from retrieval.index._manifest import Manifest
from retrieval.index.local._faiss import VectorIndex
from retrieval.index.local._graph import GraphDelta, GraphKeeper
from retrieval.rerank import expand

__all__ = ["DbaKeeper"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
_CHUNK = 2048


class DbaKeeper:
    """The augmented vectors FAISS must hold, from the kept graph's raw neighbourhoods."""

    def __init__(self, graph: GraphKeeper, k: int, alpha: float) -> None:
        self._graph = graph
        self.k, self.alpha = k, alpha
        self.stale: set[int] = set()

    @classmethod
    def start(cls, manifest: Manifest, graph: GraphKeeper | None, vectors: VectorIndex, *,
              fill: bool) -> DbaKeeper | None:
        """A keeper over ``graph`` (None without DBA); with ``fill``, ``vectors`` are refilled
        with the augmented vectors (else they are trusted to hold them: a current snapshot)."""
        if manifest.dba_k <= 0 or graph is None:
            return None
        keeper = cls(graph, manifest.dba_k, manifest.dba_alpha)
        if fill:
            keeper.fill(vectors)
        return keeper

    def fill(self, vectors: VectorIndex) -> None:
        """Replace everything ``vectors`` holds by the augmented vectors (once it is trained)."""
        self.stale.clear()
        if not vectors.is_trained:
            return
        vectors.reset()
        ids = np.sort(self._graph.ids)
        for start in range(0, len(ids), _CHUNK):
            part = ids[start:start + _CHUNK]
            vectors.add(part, self.augmented(part))

    def changed(self, vectors: VectorIndex, delta: GraphDelta) -> None:
        """Apply to FAISS a graph change already applied to the graph: drop the removed vectors,
        add the new ones, re-augment those whose first ``dba_k`` neighbours changed."""
        k = self.k
        moved = np.any(delta.I[:, :k] != delta.before[:, :k], axis=1)
        new = set(delta.new_ids.tolist())
        redo = {int(i) for i in delta.ids[moved]} - new
        gone = delta.gone.tolist()
        self.stale.difference_update(gone)
        if not vectors.is_trained:
            return
        if vectors.removable:
            vectors.remove(sorted(set(gone) | redo))
            changed = sorted(redo | new)
        else:  # tombstones for the removed; the changed stay, stale, until compaction
            vectors.remove(gone)
            self.stale.update(redo)
            changed = sorted(new)
        if changed:
            ids = np.asarray(changed, dtype=np.int64)
            vectors.add(ids, self.augmented(ids))

    def needs_compaction(self, vectors: VectorIndex) -> bool:
        """Whether the snapshot must rebuild FAISS first: stale vectors are never written (a
        snapshot holds only current augmented vectors), tombstones past the usual ratio."""
        return bool(self.stale) or vectors.needs_compaction

    def rescore(self, xq: F32, distances: F32, labels: I64) -> tuple[F32, I64]:
        """Search results with stale hits scored by their current augmented vector, re-sorted
        (inner product); unchanged when nothing is stale."""
        hit = np.isin(labels, np.fromiter(self.stale, dtype=np.int64, count=len(self.stale)))
        if not hit.any():
            return distances, labels
        out = distances.copy()
        rows, cols = np.nonzero(hit)
        fresh = self.augmented(labels[rows, cols])
        out[rows, cols] = np.einsum("nd,nd->n", xq[rows], fresh)
        order = np.argsort(-out, axis=1, kind="stable")
        return (np.ascontiguousarray(np.take_along_axis(out, order, axis=1)),
                np.ascontiguousarray(np.take_along_axis(labels, order, axis=1)))

    def augmented(self, ids: Sequence[int] | I64) -> F32:
        """The DBA vectors of ``ids`` (all in the graph), float32 (n, d)."""
        want = np.asarray(ids, dtype=np.int64).reshape(-1)
        out = np.empty((len(want), self._graph.d), dtype=np.float32)
        for start in range(0, len(want), _CHUNK):
            part = want[start:start + _CHUNK]
            rows = self._graph.neighbours(part)
            nn, sims = rows.I[:, :self.k], rows.D[:, :self.k]
            x = self._graph.raw(part)
            nb = self._graph.raw(np.where(nn >= 0, nn, part[:, None]))
            out[start:start + len(part)] = expand(
                x, nb.reshape(len(part), self.k, -1), np.where(nn >= 0, sims, -np.inf),
                self.alpha)
        return out
