"""The read side of an index: search, range search, records (mixed into ImageIndex)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from retrieval._arrays import as_k, as_matrix
from retrieval.errors import ArtifactError
from retrieval.index._faiss import VectorIndex
from retrieval.index._locks import ReadWriteLock
from retrieval.index._manifest import Manifest
from retrieval.index._seam import exact_among
from retrieval.index._store import ImageRecord, Store

__all__ = ["Hit", "Reading"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Hit:
    """One search result: the image id, its score (inner product: higher is closer), its record."""

    id: int
    score: float
    record: ImageRecord


class Reading:
    """Searches run concurrently under the owner's read lock; records come from the store."""

    path: Path
    manifest: Manifest
    _store: Store
    _vectors: VectorIndex
    _rw: ReadWriteLock
    _closed: bool

    @property
    def d(self) -> int:
        return self.manifest.dim

    def search(self, xq: npt.ArrayLike, k: int, *,
               ids: Sequence[int] | None = None) -> tuple[F32, I64]:
        """The ``k`` nearest images of each query row: D (nq, k) float32, I (nq, k) int64.

        ``xq`` must be (nq, d); it is converted to C-contiguous float32 here, once. Missing
        results (k > ntotal) have id -1 and score -inf (+inf for the l2 metric). ``ids``
        restricts the candidates to those images (searched exactly; unknown ids ignored).
        """
        queries = as_matrix(xq, self.d, name="xq")
        k = as_k(k)
        with self._rw.read():
            if self._closed:
                raise ArtifactError(f"index {self.path} is closed")
            if ids is not None:
                present = [r.id for r in self._store.get(list(ids))]
                return exact_among(queries, k, present, self._store.vectors(present),
                                   self.manifest.metric)
            if not self._vectors.is_trained and self._store.count():
                raise ArtifactError(f"index {self.path} holds {self._store.count()} images but "
                                    f"its {self.manifest.faiss_factory!r} index is not trained; "
                                    "call train()")
            return self._vectors.search(queries, k)

    def search_records(self, xq: npt.ArrayLike, k: int) -> list[list[Hit]]:
        """:meth:`search` with each hit's record; hits removed meanwhile are dropped."""
        distances, labels = self.search(xq, k)
        wanted = np.unique(labels[labels >= 0]).tolist()
        records = {r.id: r for r in self._store.get(wanted)}
        return [[Hit(int(i), float(s), records[int(i)])
                 for s, i in zip(row_d, row_i, strict=True) if int(i) in records]
                for row_d, row_i in zip(distances, labels, strict=True)]

    def range_search(self, xq: npt.ArrayLike, threshold: float,
                     cap: int) -> list[tuple[I64, F32]]:
        """Per query row, the ids scoring at least ``threshold``, best first, at most ``cap``."""
        queries = as_matrix(xq, self.d, name="xq")
        with self._rw.read():
            if self._closed:
                raise ArtifactError(f"index {self.path} is closed")
            return self._vectors.range_search(queries, threshold, cap)

    @property
    def store(self) -> Store:
        """The SQLite store (records, vectors, layout descriptors), for read-side modules."""
        return self._store

    def get(self, image_id: int) -> ImageRecord:
        """The record of one image; :class:`NotFoundError` if there is none."""
        return self._store.get_one(image_id)

    def records(self, ids: Sequence[int]) -> list[ImageRecord]:
        """Records of ``ids`` in the order asked, unknown ids left out."""
        return self._store.get(ids)

    def find_sha256(self, sha256: str) -> list[ImageRecord]:
        """Records of the images with this content, oldest first."""
        return self._store.find_by_sha256(sha256)

    def paths_present(self) -> set[str]:
        """Paths of every stored image (to resume an indexing run)."""
        return self._store.paths_present()

