"""The writing side of a local index: :class:`Writer`, held only by the one process that opened
the directory for writing (it owns the directory lock).

Every change is committed to the store first, then applied to the in-memory FAISS index
(:class:`~._live.Live`); if that second step fails the writer is *poisoned* (the store is intact,
a reopen catches up) and refuses further changes. The owner holds its write lock around every
call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from retrieval.errors import ArtifactError
from retrieval.index._manifest import Manifest
from retrieval.index._records import AddOutcome, ImageRecord, NewImage
from retrieval.index.local._live import Live
from retrieval.index.local._locks import DirectoryLock
from retrieval.index.local._recovery import trained_from_store
from retrieval.index.local._snapshot import SNAPSHOT_NAME, write_snapshot
from retrieval.index.local._store import Store

__all__ = ["Writer"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


class Writer:
    """Commits changes to the store, applies them to FAISS, writes snapshots."""

    def __init__(self, path: Path, manifest: Manifest, store: Store, lock: DirectoryLock) -> None:
        self._path = path
        self._manifest = manifest
        self._store = store
        self._lock = lock
        self._poisoned = False

    def check(self) -> None:
        if self._poisoned:
            raise ArtifactError(f"index {self._path} failed mid-change; close and reopen it "
                                "(the store is intact and the reopen catches up)")

    def add(self, live: Live, items: Sequence[NewImage], vectors: F32,
            layouts: npt.ArrayLike | None) -> list[int]:
        change = live.change()
        ids = self._store.add(items, vectors, layouts, graph=change)
        live.seq, live.dirty = self._store.last_seq(), True
        self._guarded(lambda: live.changed([], np.asarray(ids, dtype=np.int64), vectors, change))
        return ids

    def add_unique(self, live: Live, items: Sequence[NewImage], vectors: F32, *,
                   layouts: npt.ArrayLike | None, request_key: str | None, fingerprint: str,
                   key_ttl_s: float) -> AddOutcome:
        change = live.change()
        outcome = self._store.add_unique(items, vectors, layouts=layouts, request_key=request_key,
                                         fingerprint=fingerprint, key_ttl_s=key_ttl_s,
                                         graph=change)
        if outcome.new_ids:
            live.seq, live.dirty = self._store.last_seq(), True
            rows = [i for i, a in enumerate(outcome.added) if not a.duplicate]
            self._guarded(lambda: live.changed([], np.asarray(outcome.new_ids, dtype=np.int64),
                                               vectors[rows], change))
        return outcome

    def replace(self, live: Live, old_ids: Sequence[int], items: Sequence[NewImage],
                vectors: F32, layouts: npt.ArrayLike | None,
                moves: Mapping[int, str] | None = None) -> list[int]:
        """One transaction; re-points (``moves``) change no vector, so FAISS, the graph and DBA
        only see the removals and additions."""
        change = live.change()
        removed, ids = self._store.replace(old_ids, items, vectors, layouts, moves=moves,
                                           graph=change)
        if not (removed or ids):
            return ids
        live.seq, live.dirty = self._store.last_seq(), True
        self._guarded(lambda: live.changed(removed, np.asarray(ids, dtype=np.int64), vectors,
                                           change))
        return ids

    def import_records(self, live: Live, records: Sequence[ImageRecord], vectors: F32,
                       layouts: Mapping[int, npt.ArrayLike] | None) -> None:
        change = live.change()
        ids = self._store.import_records(records, vectors, layouts, graph=change)
        live.seq, live.dirty = self._store.last_seq(), True
        self._guarded(lambda: live.changed([], np.asarray(ids, dtype=np.int64), vectors, change))

    def remove(self, live: Live, ids: Iterable[int]) -> list[int]:
        change = live.change()
        removed = self._store.remove(ids, graph=change)
        live.seq, live.dirty = self._store.last_seq(), True
        empty = np.zeros((0, self._manifest.dim), dtype=np.float32)
        self._guarded(lambda: live.changed(removed, np.zeros(0, dtype=np.int64), empty, change))
        log.debug("removed %d images", len(removed))
        return removed

    def _guarded(self, change: Callable[[], None]) -> None:
        """Run a FAISS change; if it fails, the in-memory index no longer matches its seq."""
        try:
            change()
        except BaseException:
            self._poisoned = True
            log.exception("faiss change failed after the store committed; index %s needs reopening",
                          self._path)
            raise

    def train(self, live: Live, sample: int, seed: int) -> None:
        """Train a fresh FAISS index on a sample of the store and search it (module docstring)."""
        fresh = trained_from_store(self._store, self._manifest, sample, seed)
        if fresh is None:
            log.info("%r needs no training", self._manifest.faiss_factory)
            return
        live.install(fresh, self._store)
        log.info("trained %r and indexed %d vectors", self._manifest.faiss_factory, fresh.ntotal)

    def snapshot(self, live: Live) -> None:
        """Write ``index.faiss`` atomically with the last change it holds, then prune the log
        (a graph index with too many tombstones is rebuilt from the store first)."""
        vectors = live.vectors
        if live.needs_compaction() and vectors.is_trained:
            log.info("compacting: %d tombstones", len(vectors.tombstones))
            vectors.reset()
            live.install(vectors, self._store)
        write_snapshot(self._path / SNAPSHOT_NAME, vectors.to_bytes(), seq=live.seq,
                       store_uuid=self._store.uuid, d=self._manifest.dim,
                       factory=self._manifest.faiss_factory, metric=self._manifest.metric,
                       tombstones=vectors.tombstones)
        self._store.prune_changes(live.seq)
        live.dirty = False
        log.debug("snapshot of %d vectors at seq %d written", vectors.ntotal, live.seq)

    def finish(self, live: Live) -> None:
        """Snapshot if anything changed since the last one (and nothing failed)."""
        if live.dirty and not self._poisoned:
            self.snapshot(live)

    def release(self) -> None:
        self._lock.release()
