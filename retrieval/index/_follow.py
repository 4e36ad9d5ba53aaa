"""How a read-only index follows a writer in another process (mixed into ImageIndex)."""

from __future__ import annotations

import logging
from pathlib import Path

from retrieval.index._dba import DbaKeeping
from retrieval.index._faiss import VectorIndex
from retrieval.index._locks import DirectoryLock
from retrieval.index._recovery import catch_up, recover
from retrieval.index._snapshot import SNAPSHOT_NAME

__all__ = ["Following"]

log = logging.getLogger("retrieval.index._index")


class Following(DbaKeeping):
    """:meth:`refresh`: replay what the writer committed since, as recovery does on open."""

    path: Path
    _lock: DirectoryLock | None
    _closed: bool
    _seq: int
    _search_params: dict[str, float]
    _vectors: VectorIndex

    def refresh(self) -> bool:
        """Catch up with changes another process committed since (read-only indexes only).

        Replays the store's change log as recovery does on open, or reloads the snapshot and
        replays when the writer has pruned the log past this index. Returns whether anything
        changed. Searches wait while the changes are applied.
        """
        if self._lock is not None or self._closed or self._store.last_seq() == self._seq:
            return False
        if self._dba is not None:  # augmented vectors depend on neighbours: recompute them all
            with self._rw.write():
                if self._closed:
                    return False
                seq = self._store.last_seq()
                self._start_dba()
                self._seq = seq
            log.info("followed the store to seq %d (DBA recomputed)", seq)
            return True
        with self._rw.write():
            done = None if self._closed else catch_up(self._vectors, self._store, self._seq)
            if done is not None:
                self._seq = done[0]
                log.info("followed the store to seq %d: %d adds, %d removes", *done)
                return True
        fresh = recover(self.path / SNAPSHOT_NAME, self._store, self.manifest)
        fresh.vectors.set_search_params(self._search_params)
        with self._rw.write():
            if not self._closed:
                self._vectors, self._seq = fresh.vectors, fresh.seq
        log.info("reloaded the index at seq %d (%d vectors)", fresh.seq, fresh.vectors.ntotal)
        return True

