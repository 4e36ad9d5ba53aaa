"""What an open local index holds in memory: :class:`Live`.

The FAISS index it searches, the DBA keeper that feeds it augmented vectors (with DBA), the
search parameters in force, the last store change it contains and whether the snapshot on disk
lags behind. Owned by an :class:`~retrieval.index.local.ImageIndex`, changed by its writer or its
follower, always under the index's write lock (nothing here locks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from retrieval.index._manifest import Manifest
from retrieval.index.local._dba import DbaKeeper
from retrieval.index.local._faiss import VectorIndex
from retrieval.index.local._recovery import fill_from_store
from retrieval.index.local._store import Store

__all__ = ["Live"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass
class Live:
    """The searchable, in-memory side of an index (module docstring)."""

    vectors: VectorIndex
    seq: int
    dirty: bool
    dba: DbaKeeper | None = None
    params: dict[str, float] = field(default_factory=dict)

    def restart_dba(self, manifest: Manifest, store: Store) -> None:
        """Recompute every augmented vector from the store (DBA only)."""
        self.dba = DbaKeeper.start(manifest, store, self.vectors)

    def set_params(self, wanted: dict[str, float]) -> None:
        self.vectors.set_search_params(wanted)
        self.params.update(wanted)

    def added(self, ids: I64, vectors: F32) -> None:
        """Index what the store just committed (augmented with DBA; nothing until trained)."""
        if self.dba is not None:
            self.dba.added(self.vectors, ids, vectors)
        elif self.vectors.is_trained:
            self.vectors.add(ids, vectors)

    def removed(self, ids: list[int]) -> None:
        if self.dba is not None:
            self.dba.removed(self.vectors, ids)
        else:
            self.vectors.remove(ids)

    def install(self, vectors: VectorIndex, store: Store) -> None:
        """Fill a trained, empty ``vectors`` from the store and search it from now on."""
        fill_from_store(vectors, store)
        vectors.set_search_params(self.params)
        self.vectors, self.seq, self.dirty = vectors, store.last_seq(), True
        if self.dba is not None:
            self.dba.fill(vectors)

    def indexed(self, ids: Sequence[int], store: Store) -> F32:
        """The vectors FAISS searches for ``ids``: DBA-augmented with DBA, else the stored ones."""
        return self.dba.augmented(ids) if self.dba is not None else store.vectors(ids)
