"""An index directory: what was embedded, how, and a FAISS index to search it.

Layout::

    manifest.json   how the vectors were made (retrieval.index._manifest); written last on create
    store.sqlite    source of truth: image records, their vectors and layouts (._store)
    index.faiss     FAISS snapshot + the last store change it holds (._snapshot)
    lock            flock held by the one process that opened it for writing (._locks)
    *.npz           fitted state of the embedder (MOP/VLAD codebooks, whitening)
    engines/        the cached int8 engine of the backbone (retrieval._engines)
    skipped.log     files a build or an add could not read, one per line
    data/           the service's uploads, content-addressed (._sweep cleans it)

:class:`ImageIndex` owns its parts: the SQLite :class:`~._store.Store` (the truth), the
in-memory side (:class:`~._live.Live`: the FAISS :class:`~._faiss.VectorIndex` it searches and,
with DBA, a :class:`~._dba.DbaKeeper`), and either a :class:`~._writer.Writer` (opened for
writing: it holds the directory lock) or a :class:`~._follow.Follower` (opened read-only: another
process may write, :meth:`ImageIndex.refresh` catches up). Every change is committed to the store
first, then applied to FAISS; the snapshot is written atomically by :meth:`ImageIndex.snapshot`
and :meth:`ImageIndex.close`, and on open it is caught up by replaying newer store changes or
rebuilt from the store (:mod:`._recovery`). FAISS offers no crash safety and no concurrent
writes, so: one writing process per directory, and within it a readers/writer lock (searches run
concurrently, changes one at a time). Ids are the store's, stable and never reused.

With ``manifest.graph_k > 0`` or DBA the store also keeps each image's top-k raw neighbours
(the kept graph, :mod:`._kept_graph`), written in the transaction of the add or remove that
changes them and read back on open. With DBA (``manifest.dba_k > 0``) FAISS holds the augmented
vectors made from that graph and the store the raw ones, kept exact on every add and remove
(:mod:`._dba`), so the index always equals a fresh build of the same images; on HNSW (which
cannot remove) removed vectors are filtered and changed ones re-scored until the next snapshot
rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from retrieval._arrays import as_k, as_matrix
from retrieval.errors import ArtifactError, ConfigError
from retrieval.index._manifest import INDEX_FIELDS, MANIFEST_NAME, Manifest
from retrieval.index._protocol import (
    AugmentsVectors,
    CountsFolders,
    DedupesContent,
    FollowsWriter,
    ImportsRecords,
    IndexStore,
    KeepsGraph,
    KeepsLayouts,
    KeepsRequestKeys,
    KeepsTags,
    KnowsSources,
    ReplacesRecords,
    RepointsRecords,
    SelectsRecords,
    Trains,
)
from retrieval.index._records import AddOutcome, Hit, ImageRecord, NewImage
from retrieval.index._state_files import read_state_files, write_state_files
from retrieval.index._tags import TagEdit
from retrieval.index.local import _reads
from retrieval.index.local._directory import Opened, create_directory, holds_index, open_directory
from retrieval.index.local._follow import Follower
from retrieval.index.local._kept_graph import kept_k
from retrieval.index.local._live import Live
from retrieval.index.local._locks import ReadWriteLock
from retrieval.index.local._store import DEFAULT_KEY_TTL_S, Store
from retrieval.index.local._writer import Writer
from retrieval.rerank import NeighbourGraph

__all__ = ["ImageIndex"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


class ImageIndex:
    """An open index directory; use :meth:`create` or :meth:`open`, and close it (or ``with``)."""

    def __init__(self, path: Path, opened: Opened, live: Live) -> None:
        self.path = path
        self.manifest = opened.manifest
        self._store = opened.store
        self._live = live
        self._writer = (None if opened.lock is None
                        else Writer(path, opened.manifest, opened.store, opened.lock))
        self._follower = (Follower(path, opened.store, opened.manifest) if opened.lock is None
                          else None)
        self._rw = ReadWriteLock()
        self._closed = False

    @classmethod
    def _from(cls, path: Path, opened: Opened) -> ImageIndex:
        rec = opened.recovered
        index = cls(path, opened, Live(rec.vectors, rec.seq, rec.dirty))
        try:
            index.set_search_params(**opened.manifest.search_params)
        except ConfigError as exc:
            index.close()
            raise ArtifactError(f"{path / MANIFEST_NAME}: search_params: {exc}") from exc
        try:
            index._live.start_graph(index.manifest, index._store, writable=opened.lock is not None,
                                    current=not rec.dirty)
        except BaseException:
            index.close()
            raise
        return index

    @classmethod
    def create(cls, path: str | Path, manifest: Manifest, *, exist_ok: bool = False) -> ImageIndex:
        """Make a new index in a new or empty directory (its FAISS index built once).

        An IVF index probes :data:`~retrieval.index.DEFAULT_NPROBE` lists unless
        ``manifest.search_params`` says otherwise. With ``exist_ok`` an existing index there is
        opened instead (to resume indexing), provided its manifest matches ``manifest``
        (embedding settings, metric and FAISS factory).
        """
        path = Path(path)
        if not holds_index(path):
            return cls._from(path, create_directory(path, manifest))
        if not exist_ok:
            raise ArtifactError(f"{path} already holds an index (pass exist_ok to resume it)")
        index = cls.open(path, expect=manifest)
        try:
            index.manifest.check_matches(manifest, fields=INDEX_FIELDS)
        except ArtifactError:
            index.close()
            raise
        return index

    @classmethod
    def open(cls, path: str | Path, *, expect: Manifest | None = None,
             read_only: bool = False) -> ImageIndex:
        """Open an index; :class:`ManifestMismatchError` if ``expect``'s embedding differs.

        ``read_only`` takes no directory lock (another process may be writing), refuses changes
        and never writes the snapshot; it sees the index as it was when opened, until
        :meth:`refresh`.
        """
        path = Path(path)
        return cls._from(path, open_directory(path, expect=expect, read_only=read_only))

    @property
    def d(self) -> int:
        return self.manifest.dim

    @property
    def read_only(self) -> bool:
        return self._writer is None

    @property
    def count(self) -> int:
        """Images in the store (searchable or waiting for training)."""
        return self._store.count()

    @property
    def ntotal(self) -> int:
        """Vectors searchable now."""
        with self._rw.read():
            return self._live.vectors.ntotal

    @property
    def is_trained(self) -> bool:
        with self._rw.read():
            return self._live.vectors.is_trained

    @property
    def store(self) -> Store:
        """The SQLite store (records, vectors, layout descriptors), for read-side modules."""
        return self._store

    def _check_open(self) -> None:
        if self._closed:
            raise ArtifactError(f"index {self.path} is closed")

    def _writing(self) -> Writer:
        self._check_open()
        if self._writer is None:
            raise ConfigError(f"index {self.path} was opened read-only")
        self._writer.check()
        return self._writer

    # -- changes ------------------------------------------------------------------------------

    def add(self, items: Sequence[NewImage], xb: npt.ArrayLike,
            layouts: npt.ArrayLike | None = None) -> list[int]:
        """Store ``items`` with their (n, d) vectors (and layout descriptors) and index them;
        returns their new ids. Until a trainable index (IVF, PQ...) is trained, vectors only
        wait in the store."""
        vectors = as_matrix(xb, self.d, n=len(items))
        with self._rw.write():
            return self._writing().add(self._live, items, vectors, layouts)

    def add_unique(self, items: Sequence[NewImage], xb: npt.ArrayLike, *,
                   layouts: npt.ArrayLike | None = None, request_key: str | None = None,
                   fingerprint: str = "", key_ttl_s: float = DEFAULT_KEY_TTL_S) -> AddOutcome:
        """:meth:`add` in one transaction, skipping content (sha256) already stored and replaying
        the answer of an earlier call with the same ``request_key`` (see :mod:`._unique`)."""
        vectors = as_matrix(xb, self.d, n=len(items))
        with self._rw.write():
            return self._writing().add_unique(self._live, items, vectors, layouts=layouts,
                                              request_key=request_key, fingerprint=fingerprint,
                                              key_ttl_s=key_ttl_s)

    def saved_outcome(self, request_key: str, fingerprint: str,
                      key_ttl_s: float = DEFAULT_KEY_TTL_S) -> AddOutcome | None:
        """The answer of an earlier :meth:`add_unique` with ``request_key``, if one committed."""
        return self._store.saved_outcome(request_key, fingerprint, key_ttl_s)

    def replace(self, old_ids: Sequence[int], items: Sequence[NewImage], xb: npt.ArrayLike,
                layouts: npt.ArrayLike | None = None, *,
                moves: Mapping[int, str] | None = None) -> list[int]:
        """Re-point ``moves`` (as :meth:`repoint`), remove ``old_ids`` and :meth:`add` ``items``
        in one transaction; returns the new ids."""
        vectors = as_matrix(xb, self.d, n=len(items))
        with self._rw.write():
            return self._writing().replace(self._live, old_ids, items, vectors, layouts, moves)

    def repoint(self, moves: Mapping[int, str]) -> list[int]:
        """New paths for stored ids (moved files), in one transaction; the ids that existed.
        Nothing else changes: vectors, ids and FAISS stay as they are."""
        with self._rw.write():
            self._writing()
            return self._store.repoint(moves)

    def import_records(self, records: Sequence[ImageRecord], xb: npt.ArrayLike,
                       layouts: Mapping[int, npt.ArrayLike] | None = None) -> None:
        """Store ``records`` with their own ids and times and index their vectors, in one
        transaction (a migration); :class:`ConfigError` if an id is already stored."""
        vectors = as_matrix(xb, self.d, n=len(records))
        with self._rw.write():
            self._writing().import_records(self._live, records, vectors, layouts)

    def remove(self, ids: Iterable[int]) -> list[int]:
        """Remove images by id; returns the ids that existed and were removed (others ignored)."""
        with self._rw.write():
            return self._writing().remove(self._live, ids)

    def train(self, sample: int = 100_000, seed: int = 0) -> None:
        """(Re)train a trainable index on up to ``sample`` stored vectors, then index them all.

        Nothing to do for types that need no training (Flat, HNSW). :class:`ConfigError` says how
        many vectors are needed when there are too few (an ``IVF1024`` needs 1024, better
        39 * 1024). Searches wait while this runs.
        """
        if isinstance(sample, bool) or sample < 1:
            raise ConfigError(f"sample must be a positive integer, got {sample!r}")
        with self._rw.write():
            self._writing().train(self._live, sample, seed)

    def set_search_params(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Search-time knobs: IVF lists probed, HNSW candidate list size (over the manifest's)."""
        wanted = {k: float(v) for k, v in (("nprobe", nprobe), ("ef_search", ef_search))
                  if v is not None}
        if any(v < 1 for v in wanted.values()):
            raise ConfigError(f"search parameters must be positive, got {wanted}")
        with self._rw.write():
            self._live.set_params(wanted)

    @property
    def search_params(self) -> dict[str, int]:
        """The search-time knobs in force (from the manifest, then :meth:`set_search_params`)."""
        with self._rw.read():
            return {name: int(value) for name, value in self._live.params.items()}

    # -- reads --------------------------------------------------------------------------------

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
            self._check_open()
            return _reads.search(self._store, self._live, self.manifest, queries, k, ids)

    def search_records(self, xq: npt.ArrayLike, k: int) -> list[list[Hit]]:
        """:meth:`search` with each hit's record; hits removed meanwhile are dropped."""
        return _reads.with_records(self._store, *self.search(xq, k))

    def range_search(self, xq: npt.ArrayLike, threshold: float,
                     cap: int) -> list[tuple[I64, F32]]:
        """Per query row, the ids scoring at least ``threshold``, best first, at most ``cap``."""
        queries = as_matrix(xq, self.d, name="xq")
        with self._rw.read():
            self._check_open()
            return self._live.vectors.range_search(queries, threshold, cap)

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

    @property
    def images_root(self) -> str | None:
        """The folder the index was built from (paths under it are shown relative to it)."""
        return self._store.get_meta("images_root")

    def set_images_root(self, folder: str) -> None:
        self._writing()
        self._store.set_meta("images_root", folder)

    def layouts(self, ids: Sequence[int]) -> dict[int, F32]:
        """Layout descriptors of those ``ids`` that have one (none for older indexes)."""
        return self._store.layouts(ids)

    def ids_after(self, cursor: int, limit: int) -> list[int]:
        """Up to ``limit`` stored ids greater than ``cursor``, ascending."""
        return self._store.ids_after(cursor, limit)

    def ids_matching(self, folder: str | None, added_after: float | None,
                     added_before: float | None, tags: Sequence[str] = ()) -> list[int]:
        """Ids under ``folder`` (absolute) added in ``[added_after, added_before)`` holding all
        of ``tags``, ascending."""
        return self._store.ids_matching(folder, added_after, added_before, tags)

    def retag(self, ids: Sequence[int], edit: TagEdit) -> list[ImageRecord]:
        """Apply ``edit`` to the tags of ``ids`` in one transaction (nothing re-embedded); their
        new records. :class:`NotFoundError`, nothing changed, if one is not stored."""
        self._writing()
        return self._store.retag(ids, edit)

    def tag_counts(self) -> dict[str, int]:
        """Every tag in use and how many images hold it."""
        return self._store.tag_counts()

    def dir_counts(self) -> dict[str, int]:
        """Every directory (absolute) holding images, and how many it holds directly."""
        return self._store.dir_counts()

    def stored_vectors(self, ids: Sequence[int]) -> F32:
        """The raw stored vectors of ``ids``; :class:`NotFoundError` if one is unknown."""
        return self._store.vectors(ids)

    @property
    def graph_k(self) -> int:
        """Neighbours per image of the kept graph: ``max(manifest.graph_k, manifest.dba_k)``
        (0: the index keeps none)."""
        return kept_k(self.manifest)

    def neighbours(self, ids: Sequence[int]) -> NeighbourGraph:
        """The kept graph's rows of ``ids`` in that order (raw cosines; an unknown id gets an
        all-missing row); :class:`ConfigError` when the index keeps no graph."""
        with self._rw.read():
            self._check_open()
            graph = self._live.graph
            if graph is None:
                raise ConfigError(f"index {self.path} keeps no neighbour graph: create it with "
                                  "graph_k > 0 (cbir index build --graph-k K) or with DBA")
            return graph.neighbours(ids)

    def indexed_vectors(self, ids: Sequence[int]) -> F32:
        """The vectors FAISS searches for ``ids``: DBA-augmented with DBA, else the stored ones."""
        with self._rw.read():
            return self._live.indexed(ids, self._store)

    # -- following, snapshots, closing --------------------------------------------------------

    def refresh(self) -> bool:
        """Catch up with changes another process committed since (read-only indexes only).

        Replays the store's change log as recovery does on open, or reloads the snapshot and
        replays when the writer has pruned the log past this index; with DBA every augmented
        vector is recomputed. Returns whether anything changed. Searches wait meanwhile.
        """
        follower = self._follower
        if follower is None or self._closed or follower.last_seq() == self._live.seq:
            return False
        with self._rw.write():
            if self._closed:
                return False
            if follower.catch_up(self._live):
                return True
        fresh = follower.reload(self._live.params)
        with self._rw.write():
            if not self._closed:
                self._live.vectors, self._live.seq = fresh.vectors, fresh.seq
                if self._live.graph is not None:
                    self._live.start_graph(self.manifest, self._store, writable=False,
                                           current=not fresh.dirty)
        return True

    def snapshot(self) -> None:
        """Write ``index.faiss`` atomically with the last change it holds, then prune the log."""
        with self._rw.write():
            self._writing().snapshot(self._live)

    def save_state_blobs(self, blobs: Mapping[str, bytes]) -> None:
        """Write fitted state (``<step>.npz`` by name) into the directory, atomically."""
        write_state_files(self.path, blobs)

    def load_state_blobs(self) -> dict[str, bytes]:
        """The fitted state the directory holds, by file name."""
        return read_state_files(self.path)

    def size_on_disk(self) -> int:
        """Bytes used by the directory's files."""
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    def close(self) -> None:
        """Snapshot if anything changed since the last one, then release everything. Idempotent."""
        with self._rw.write():
            if self._closed:
                return
            try:
                if self._writer is not None:
                    self._writer.finish(self._live)
            finally:
                self._closed = True
                self._store.close()
                if self._writer is not None:
                    self._writer.release()

    def __enter__(self) -> ImageIndex:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"ImageIndex({str(self.path)!r}, factory={self.manifest.faiss_factory!r}, "
                f"d={self.d}, closed={self._closed})")


if TYPE_CHECKING:  # mypy checks that ImageIndex has the core and every capability it declares
    def _declared(index: ImageIndex) -> tuple[IndexStore, DedupesContent, KeepsRequestKeys,
                                              KnowsSources, Trains, FollowsWriter,
                                              AugmentsVectors, KeepsLayouts, ReplacesRecords,
                                              RepointsRecords, ImportsRecords,
                                              SelectsRecords, KeepsTags, CountsFolders,
                                              KeepsGraph]:
        return (index, index, index, index, index, index, index, index, index, index, index,
                index, index, index, index)
