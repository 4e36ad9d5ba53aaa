"""How a read-only index follows the writer of its directory in another process."""

from __future__ import annotations

import logging
from pathlib import Path

from retrieval.index._manifest import Manifest
from retrieval.index.local._live import Live
from retrieval.index.local._recovery import Recovered, catch_up, recover
from retrieval.index.local._snapshot import SNAPSHOT_NAME
from retrieval.index.local._store import Store

__all__ = ["Follower"]

log = logging.getLogger(__name__)


class Follower:
    """Replays what the writer committed since, as recovery does on open.

    Owned by a read-only :class:`~retrieval.index.local.ImageIndex`, which holds its write lock
    around :meth:`catch_up` and installs what :meth:`reload` returns.
    """

    def __init__(self, directory: Path, store: Store, manifest: Manifest) -> None:
        self._directory = directory
        self._store = store
        self._manifest = manifest

    def last_seq(self) -> int:
        """The last change the writer committed."""
        return self._store.last_seq()

    def catch_up(self, live: Live) -> bool:
        """Apply to ``live`` in place what the writer committed since its seq: replayed from
        the change log (the kept graph reread), or with DBA every augmented vector refilled
        from the graph the writer stored. False when the log no
        longer reaches back that far (then :meth:`reload`)."""
        if live.dba is not None:  # augmented vectors depend on neighbours: refill them all
            seq = self._store.last_seq()
            live.start_graph(self._manifest, self._store, writable=False, current=False)
            live.seq = seq
            log.info("followed the store to seq %d (graph reread, DBA refilled)", seq)
            return True
        done = catch_up(live.vectors, self._store, live.seq)
        if done is None:
            return False
        live.seq = done[0]
        if live.graph is not None:  # the writer committed its rows with the changes
            live.start_graph(self._manifest, self._store, writable=False, current=True)
        log.info("followed the store to seq %d: %d adds, %d removes", *done)
        return True

    def reload(self, search_params: dict[str, float]) -> Recovered:
        """The index as a fresh open finds it (snapshot plus replay), with ``search_params``."""
        fresh = recover(self._directory / SNAPSHOT_NAME, self._store, self._manifest)
        fresh.vectors.set_search_params(search_params)
        log.info("reloaded the index at seq %d (%d vectors)", fresh.seq, fresh.vectors.ntotal)
        return fresh
