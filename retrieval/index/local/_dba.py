"""Keeping FAISS's DBA-augmented vectors exact as images come and go: :class:`DbaKeeper`.

With DBA (``manifest.dba_k > 0``) the store keeps the raw vectors and FAISS the augmented ones.
On open every augmented vector is computed from the store; each add or remove recomputes exactly
the vectors whose raw top-k neighbourhood changed (:class:`~retrieval.rerank.DbaState`).
An :class:`~retrieval.index.local.ImageIndex` without DBA has no keeper; with one, it hands the
keeper its live :class:`VectorIndex` (under its write lock) for every change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError
from retrieval.index._manifest import Manifest
from retrieval.index.local._faiss import VectorIndex
from retrieval.index.local._store import Store
from retrieval.rerank import DbaState

__all__ = ["DbaKeeper"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


class DbaKeeper:
    """Every image's raw top-k neighbourhood, and the augmented vectors FAISS must hold."""

    def __init__(self, state: DbaState) -> None:
        self._state = state

    @classmethod
    def start(cls, manifest: Manifest, store: Store, vectors: VectorIndex) -> DbaKeeper | None:
        """A keeper filled from every stored vector, ``vectors`` refilled with the augmented
        ones; None without DBA. :class:`ConfigError` for a FAISS type that cannot remove."""
        if manifest.dba_k <= 0:
            return None
        if not vectors.removable:
            raise ConfigError(f"DBA needs a FAISS index that removes vectors (Flat, IVF), "
                              f"not {manifest.faiss_factory!r}")
        keeper = cls(DbaState(manifest.dba_k, manifest.dba_alpha))
        for ids, xb in store.iter_all():
            keeper._state.add(ids, xb)
        keeper.fill(vectors)
        return keeper

    def fill(self, vectors: VectorIndex) -> None:
        """Replace everything ``vectors`` holds by the augmented vectors (once it is trained)."""
        if vectors.is_trained:
            vectors.reset()
            if len(self._state):
                ids = self._state.ids.copy()
                vectors.add(ids, self._state.augmented(ids))

    def added(self, vectors: VectorIndex, ids: I64, raw: F32) -> None:
        """``ids`` were stored with ``raw`` vectors: index them and re-augment their neighbours."""
        affected = self._state.add(ids, raw)
        if vectors.is_trained:
            self._reindex(vectors, affected - set(ids.tolist()), affected)

    def removed(self, vectors: VectorIndex, ids: list[int]) -> None:
        """``ids`` left the store: drop them and re-augment the vectors that had them near."""
        affected = self._state.remove(ids)
        if vectors.is_trained:
            vectors.remove(ids)
            self._reindex(vectors, affected, affected)

    def augmented(self, ids: Sequence[int]) -> F32:
        return self._state.augmented(ids)

    def _reindex(self, vectors: VectorIndex, present: set[int], changed: set[int]) -> None:
        """Replace the augmented vectors of ``changed`` (``present`` are in FAISS already)."""
        if present:
            vectors.remove(sorted(present))
        if changed:
            ids = np.asarray(sorted(changed), dtype=np.int64)
            vectors.add(ids, self._state.augmented(ids))
