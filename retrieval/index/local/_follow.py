"""How a read-only index follows the writer of its directory in another process."""

from __future__ import annotations

import logging
from pathlib import Path

from retrieval.index._manifest import Manifest
from retrieval.index.local._faiss import VectorIndex
from retrieval.index.local._recovery import Recovered, catch_up, recover
from retrieval.index.local._snapshot import SNAPSHOT_NAME
from retrieval.index.local._store import Store

__all__ = ["Follower"]

log = logging.getLogger(__name__)


class Follower:
    """Replays what the writer committed since, as recovery does on open.

    Owned by a read-only :class:`~retrieval.index.local.ImageIndex`, which holds its write lock
    around :meth:`replay` and installs what :meth:`reload` returns.
    """

    def __init__(self, directory: Path, store: Store, manifest: Manifest) -> None:
        self._directory = directory
        self._store = store
        self._manifest = manifest

    def last_seq(self) -> int:
        """The last change the writer committed."""
        return self._store.last_seq()

    def replay(self, vectors: VectorIndex, seq: int) -> int | None:
        """Apply to ``vectors`` (at ``seq``) the changes committed since; the new seq, or None
        when the log no longer reaches back to ``seq`` (then :meth:`reload`)."""
        done = catch_up(vectors, self._store, seq)
        if done is None:
            return None
        log.info("followed the store to seq %d: %d adds, %d removes", *done)
        return done[0]

    def reload(self, search_params: dict[str, float]) -> Recovered:
        """The index as a fresh open finds it (snapshot plus replay), with ``search_params``."""
        fresh = recover(self._directory / SNAPSHOT_NAME, self._store, self._manifest)
        fresh.vectors.set_search_params(search_params)
        log.info("reloaded the index at seq %d (%d vectors)", fresh.seq, fresh.vectors.ntotal)
        return fresh
