"""What every store behind an index directory does (:class:`IndexStore`), and what some do.

Two engines implement the core: :class:`~retrieval.index.local.ImageIndex` (FAISS in memory +
SQLite on disk, one writing process; the default) and :class:`~retrieval.index.milvus.MilvusIndex`
(vectors *and* records in a Milvus collection, any number of processes). The CLI and the service
hold an ``IndexStore``; one contract suite (``tests/retrieval/index/test_store_contract.py``) runs
against both.

Beyond the core, an engine *declares* capabilities by having their members; an edge that needs one
checks it with ``isinstance`` (the protocols are runtime-checkable) and says plainly when the store
lacks it. Nothing is filled with a no-op or a ``NotImplementedError``:

* :class:`DedupesContent` — ``find_sha256``, ``add_unique``: local and Milvus;
* :class:`KeepsRequestKeys` — ``saved_outcome``, ``add_unique(request_key=...)``: local only
  (the key commits in the add's SQLite transaction);
* :class:`KnowsSources` — ``images_root``, ``set_images_root``, ``paths_present``: both;
* :class:`Trains` — ``is_trained``, ``train``: local only (Milvus trains its lists itself);
* :class:`FollowsWriter` — ``refresh``: local only (a Milvus store is always current);
* :class:`AugmentsVectors` — ``indexed_vectors``, the DBA re-ranking state: local only;
* :class:`KeepsLayouts` — ``layouts``, ``range_search``, ``ids_after`` (near-duplicates): local
  only;
* :class:`SelectsRecords` — ``ids_matching`` (a filter's ids from the store's own indexes; others
  are scanned): local (SQL on the path index and the tags table) and Milvus (a scalar
  expression);
* :class:`KeepsTags` — ``retag``, ``tag_counts``: local and Milvus (collections made before
  tags have none and refuse ``retag``);
* :class:`CountsFolders` — ``dir_counts``: local and Milvus.
* :class:`ReplacesRecords` — ``replace`` (re-point, remove and add in one transaction:
  ``cbir index add`` of a file whose content changed, a ``cbir index watch`` / ``sync`` batch):
  local only (a store without it applies a sync batch in steps).
* :class:`KeepsGraph` — ``graph_k``, ``neighbours``: the collection's kNN graph kept beside the
  records and updated with every add and remove (DBA, diffusion, near-duplicate candidates).
* :class:`RepointsRecords` — ``repoint`` (a moved file's record given its new path, nothing
  embedded: ``cbir index watch`` / ``sync``): local (one UPDATE) and Milvus (an upsert of the
  stored row).
* :class:`ImportsRecords` — ``import_records`` (records stored with their own ids and times, as
  another store held them: ``cbir index migrate``): local and Milvus.

Python 3.11's ``isinstance`` against a protocol reads each member, properties included: the few
property members of the capabilities (``is_trained``, ``images_root``) are cheap reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from retrieval.index._manifest import Manifest
from retrieval.index._records import AddOutcome, Hit, ImageRecord, NewImage
from retrieval.index._tags import TagEdit
from retrieval.rerank import NeighbourGraph

__all__ = ["AugmentsVectors", "CountsFolders", "DedupesContent", "FollowsWriter",
           "ImportsRecords", "IndexStore", "KeepsGraph", "KeepsLayouts", "KeepsRequestKeys",
           "KeepsTags", "KnowsSources", "ReplacesRecords", "RepointsRecords", "SelectsRecords",
           "Trains"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@runtime_checkable
class IndexStore(Protocol):
    """An open index: records and vectors, searched by inner product (or l2), ids never reused."""

    path: Path
    manifest: Manifest

    @property
    def d(self) -> int: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def count(self) -> int:
        """Images stored."""
    @property
    def ntotal(self) -> int:
        """Vectors searchable now (fewer than :attr:`count` while an index waits for training)."""
    @property
    def search_params(self) -> dict[str, int]: ...
    def set_search_params(self, *, nprobe: int | None = None,
                          ef_search: int | None = None) -> None: ...
    def add(self, items: Sequence[NewImage], xb: npt.ArrayLike,
            layouts: npt.ArrayLike | None = None) -> list[int]:
        """New ids of ``items`` (``layouts`` are kept by stores that :class:`KeepsLayouts`)."""
    def remove(self, ids: Iterable[int]) -> list[int]: ...
    def search(self, xq: npt.ArrayLike, k: int, *,
               ids: Sequence[int] | None = None) -> tuple[F32, I64]: ...
    def search_records(self, xq: npt.ArrayLike, k: int) -> list[list[Hit]]: ...
    def get(self, image_id: int) -> ImageRecord: ...
    def records(self, ids: Sequence[int]) -> list[ImageRecord]: ...
    def ids_after(self, cursor: int, limit: int) -> list[int]:
        """Up to ``limit`` stored ids greater than ``cursor``, ascending (paging in id order)."""
    def stored_vectors(self, ids: Sequence[int]) -> F32: ...
    def size_on_disk(self) -> int: ...
    def save_state_blobs(self, blobs: Mapping[str, bytes]) -> None: ...
    def load_state_blobs(self) -> dict[str, bytes]: ...
    def close(self) -> None: ...
    def __enter__(self) -> IndexStore: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


@runtime_checkable
class DedupesContent(Protocol):
    """One record per content: an add skips what is stored already (by sha256)."""

    def find_sha256(self, sha256: str) -> list[ImageRecord]: ...
    def add_unique(self, items: Sequence[NewImage], xb: npt.ArrayLike, *,
                   layouts: npt.ArrayLike | None = None) -> AddOutcome: ...


@runtime_checkable
class KeepsRequestKeys(Protocol):
    """Request keys (``Idempotency-Key``) committed with the add, so a retry replays its answer."""

    def saved_outcome(self, request_key: str, fingerprint: str,
                      key_ttl_s: float = ...) -> AddOutcome | None: ...
    def add_unique(self, items: Sequence[NewImage], xb: npt.ArrayLike, *,
                   layouts: npt.ArrayLike | None = None, request_key: str | None = None,
                   fingerprint: str = "", key_ttl_s: float = ...) -> AddOutcome: ...


@runtime_checkable
class KnowsSources(Protocol):
    """Where the images came from: the folder an index was built from, every stored path."""

    @property
    def images_root(self) -> str | None: ...
    def set_images_root(self, folder: str) -> None: ...
    def paths_present(self) -> set[str]: ...


@runtime_checkable
class ReplacesRecords(Protocol):
    """Records removed, others added and others re-pointed (``moves``: id -> new path, as
    :meth:`RepointsRecords.repoint`) in one transaction: a re-added file that changed, a sync
    batch. Returns the new ids."""

    def replace(self, old_ids: Sequence[int], items: Sequence[NewImage], xb: npt.ArrayLike,
                layouts: npt.ArrayLike | None = None, *,
                moves: Mapping[int, str] | None = None) -> list[int]: ...


@runtime_checkable
class RepointsRecords(Protocol):
    """A record given another path, its id, vector and content kept (a file that moved)."""

    def repoint(self, moves: Mapping[int, str]) -> list[int]:
        """Set each id's path; returns the ids that existed (unknown ids ignored)."""


@runtime_checkable
class ImportsRecords(Protocol):
    """Records stored with their own ids and ``added_at``, as another store held them.

    Every id must be new to this store (:class:`ConfigError` otherwise); later adds get ids
    above every imported one.
    """

    def import_records(self, records: Sequence[ImageRecord], xb: npt.ArrayLike,
                       layouts: Mapping[int, npt.ArrayLike] | None = None) -> None: ...


@runtime_checkable
class Trains(Protocol):
    """An index type that must be trained before vectors become searchable (IVF, PQ...)."""

    @property
    def is_trained(self) -> bool: ...
    def train(self, sample: int = ..., seed: int = ...) -> None: ...


@runtime_checkable
class FollowsWriter(Protocol):
    """A read-only opener that catches up with what another process committed."""

    def refresh(self) -> bool: ...


@runtime_checkable
class AugmentsVectors(Protocol):
    """Searches compare against other vectors than the stored ones (DBA re-ranking state)."""

    def indexed_vectors(self, ids: Sequence[int]) -> F32: ...


@runtime_checkable
class KeepsLayouts(Protocol):
    """Layout descriptors beside the records, and the range search near-duplicates need."""

    def layouts(self, ids: Sequence[int]) -> dict[int, F32]: ...
    def range_search(self, xq: npt.ArrayLike, threshold: float,
                     cap: int) -> list[tuple[I64, F32]]: ...
    def ids_after(self, cursor: int, limit: int) -> list[int]: ...


@runtime_checkable
class SelectsRecords(Protocol):
    """A filter's ids straight from the store (a path and time range on its own indexes)."""

    def ids_matching(self, folder: str | None, added_after: float | None,
                     added_before: float | None, tags: Sequence[str] = ()) -> list[int]: ...


@runtime_checkable
class KeepsTags(Protocol):
    """Tags on records, changed without re-embedding (:class:`~retrieval.index.TagEdit`)."""

    def retag(self, ids: Sequence[int], edit: TagEdit) -> list[ImageRecord]: ...
    def tag_counts(self) -> dict[str, int]: ...


@runtime_checkable
class CountsFolders(Protocol):
    """Every directory (absolute) holding stored images, with how many it holds directly."""

    def dir_counts(self) -> dict[str, int]: ...


@runtime_checkable
class KeepsGraph(Protocol):
    """The collection's kNN graph over the *raw* stored vectors, kept incrementally: the rows of
    ``ids`` (in that order; an unknown id is an all-missing row) of a
    :class:`~retrieval.rerank.NeighbourGraph` with ``graph_k`` neighbours each."""

    @property
    def graph_k(self) -> int: ...
    def neighbours(self, ids: Sequence[int]) -> NeighbourGraph: ...
