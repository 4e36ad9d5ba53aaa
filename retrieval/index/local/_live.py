"""What an open local index holds in memory: :class:`Live`.

The FAISS index it searches, the kept neighbour graph (when the manifest asks for one, or for
DBA: :mod:`._kept_graph`), the DBA keeper that feeds FAISS augmented vectors from it (with DBA),
the search parameters in force, the last store change it contains and whether the snapshot on
disk lags behind. Owned by an :class:`~retrieval.index.local.ImageIndex`, changed by its writer
or its follower, always under the index's write lock (nothing here locks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from retrieval.index._manifest import Manifest
from retrieval.index.local._dba import DbaKeeper
from retrieval.index.local._faiss import VectorIndex
from retrieval.index.local._graph import GraphKeeper
from retrieval.index.local._kept_graph import GraphChange, kept_k, open_graph
from retrieval.index.local._recovery import fill_from_store
from retrieval.index.local._store import Store

__all__ = ["MAX_STALE_FETCH", "Live"]

#: Extra candidates a search fetches while DBA vectors are stale in a FAISS type that cannot
#: replace them (HNSW; until the next snapshot rebuilds it).
MAX_STALE_FETCH = 256

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass
class Live:
    """The searchable, in-memory side of an index (module docstring)."""

    vectors: VectorIndex
    seq: int
    dirty: bool
    graph: GraphKeeper | None = None
    dba: DbaKeeper | None = None
    params: dict[str, float] = field(default_factory=dict)

    def start_graph(self, manifest: Manifest, store: Store, *, writable: bool,
                    current: bool) -> None:
        """Read the kept graph (built once if the store has none) and start DBA over it;
        ``current``: FAISS was loaded from a snapshot with nothing replayed, so it already
        holds the augmented vectors."""
        k = kept_k(manifest)
        self.graph, self.dba = None, None
        if not k:
            return
        self.graph, built = open_graph(store, k, writable=writable, ann=self._ann)
        self.dba = DbaKeeper.start(manifest, self.graph, self.vectors,
                                   fill=built or not current)

    def _ann(self, xq: F32, c: int) -> I64 | None:
        """The FAISS index's own search as the graph's candidates (when it holds everything)."""
        graph = self.graph
        if graph is None or not self.vectors.is_trained or self.vectors.ntotal != len(graph):
            return None
        return self.vectors.search(xq, c)[1]

    def change(self) -> GraphChange | None:
        """The store hook for the next change (None without a graph)."""
        return GraphChange(self.graph) if self.graph is not None else None

    def set_params(self, wanted: dict[str, float]) -> None:
        self.vectors.set_search_params(wanted)
        self.params.update(wanted)

    def changed(self, removed: Sequence[int], ids: I64, vectors: F32,
                change: GraphChange | None) -> None:
        """Apply what the store just committed: ``removed`` left, ``ids`` (``vectors``) came
        (augmented with DBA; nothing indexed until trained)."""
        if change is not None and change.delta is not None and self.graph is not None:
            self.graph.apply(change.delta)
            if self.dba is not None:
                self.dba.changed(self.vectors, change.delta)
                return
        if removed:
            self.vectors.remove(removed)
        if len(ids) and self.vectors.is_trained:
            self.vectors.add(ids, vectors)

    def needs_compaction(self) -> bool:
        if self.dba is not None and self.vectors.is_trained:
            return self.dba.needs_compaction(self.vectors)
        return self.vectors.needs_compaction

    def search(self, xq: F32, k: int) -> tuple[F32, I64]:
        """FAISS's ``k`` best; with stale DBA vectors (HNSW) ``k`` + #stale (at most
        ``k`` + :data:`MAX_STALE_FETCH`) are fetched, the stale ones re-scored with their
        current vector, and the best ``k`` kept."""
        stale = len(self.dba.stale) if self.dba is not None else 0
        if not stale or self.dba is None:
            return self.vectors.search(xq, k)
        distances, labels = self.vectors.search(xq, k + min(stale, MAX_STALE_FETCH))
        distances, labels = self.dba.rescore(xq, distances, labels)
        return np.ascontiguousarray(distances[:, :k]), np.ascontiguousarray(labels[:, :k])

    def install(self, vectors: VectorIndex, store: Store) -> None:
        """Fill a trained, empty ``vectors`` from the store and search it from now on."""
        fill_from_store(vectors, store)
        vectors.set_search_params(self.params)
        self.vectors, self.seq, self.dirty = vectors, store.last_seq(), True
        if self.dba is not None:
            self.dba.fill(vectors)

    def indexed(self, ids: Sequence[int], store: Store) -> F32:
        """The vectors FAISS searches for ``ids``: DBA-augmented with DBA, else the stored ones."""
        if self.dba is None:
            return store.vectors(ids)
        store.vectors(ids)  # NotFoundError for an unknown id, as without DBA
        return self.dba.augmented(ids)
