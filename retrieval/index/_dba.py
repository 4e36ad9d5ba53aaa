"""Keeping FAISS's DBA-augmented vectors exact as images come and go (mixed into ImageIndex).

With DBA (``manifest.dba_k > 0``) the store keeps the raw vectors and FAISS the augmented ones.
On open every augmented vector is computed from the store; each add or remove recomputes exactly
the vectors whose raw top-k neighbourhood changed (:class:`~._rerank.DbaState`). Without DBA these
methods add and remove the raw vectors themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError
from retrieval.index._faiss import VectorIndex
from retrieval.index._locks import ReadWriteLock
from retrieval.index._manifest import Manifest
from retrieval.index._store import Store
from retrieval.rerank import DbaState

__all__ = ["DbaKeeping"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


class DbaKeeping:
    """The FAISS side of adds and removes, DBA or not; the owner holds its write lock."""

    manifest: Manifest
    _store: Store
    _vectors: VectorIndex
    _rw: ReadWriteLock
    _dba: DbaState | None

    def _start_dba(self) -> None:
        """Compute every augmented vector from the store (DBA only)."""
        m = self.manifest
        if m.dba_k <= 0:
            return
        if not self._vectors.removable:
            raise ConfigError(f"DBA needs a FAISS index that removes vectors (Flat, IVF), "
                              f"not {m.faiss_factory!r}")
        self._dba = DbaState(m.dba_k, m.dba_alpha)
        for ids, xb in self._store.iter_all():
            self._dba.add(ids, xb)
        self._fill_augmented()

    def _fill_augmented(self) -> None:
        if self._dba is not None and self._vectors.is_trained:
            self._vectors.reset()
            if len(self._dba):
                self._vectors.add(self._dba.ids.copy(), self._dba.augmented(self._dba.ids))

    def _index_new(self, ids: I64, vectors: F32) -> None:
        if self._dba is None:
            if self._vectors.is_trained:
                self._vectors.add(ids, vectors)
            return
        affected = self._dba.add(ids, vectors)
        if self._vectors.is_trained:
            self._reindex(affected - set(ids.tolist()), affected)

    def _unindex(self, removed: list[int]) -> None:
        if self._dba is None:
            self._vectors.remove(removed)
            return
        affected = self._dba.remove(removed)
        if self._vectors.is_trained:
            self._vectors.remove(removed)
            self._reindex(affected, affected)

    def _reindex(self, present: set[int], changed: set[int]) -> None:
        """Replace the augmented vectors of ``changed`` (``present`` are in FAISS already)."""
        assert self._dba is not None
        if present:
            self._vectors.remove(sorted(present))
        if changed:
            ids = np.asarray(sorted(changed), dtype=np.int64)
            self._vectors.add(ids, self._dba.augmented(ids))

    def indexed_vectors(self, ids: Sequence[int]) -> F32:
        """The vectors FAISS searches for ``ids``: DBA-augmented with DBA, else the stored ones."""
        if self._dba is not None:
            with self._rw.read():
                return self._dba.augmented(ids)
        return self._store.vectors(ids)

    def stored_vectors(self, ids: Sequence[int]) -> F32:
        """The raw stored vectors of ``ids``; :class:`NotFoundError` if one is unknown."""
        return self._store.vectors(ids)

