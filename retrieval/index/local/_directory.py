"""Creating and opening the files of a local index directory (see :mod:`._image_index`).

``manifest.json`` is written *last* on create, so its presence marks a complete index: a create
interrupted before it leaves a directory that neither opens nor is silently reused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from retrieval._atomic import remove_stale_temporaries
from retrieval.errors import ArtifactError
from retrieval.index._manifest import MANIFEST_NAME, Manifest
from retrieval.index.local._faiss import VectorIndex
from retrieval.index.local._locks import LOCK_NAME, DirectoryLock
from retrieval.index.local._recovery import Recovered, recover
from retrieval.index.local._snapshot import SNAPSHOT_NAME
from retrieval.index.local._store import STORE_NAME, Store

__all__ = ["Opened", "create_directory", "holds_index", "open_directory"]

log = logging.getLogger(__name__)


@dataclass
class Opened:
    """The parts of an open index directory; ``lock`` is None when opened read-only."""

    manifest: Manifest
    store: Store
    recovered: Recovered
    lock: DirectoryLock | None


def holds_index(path: Path) -> bool:
    return (path / MANIFEST_NAME).exists()


def create_directory(path: Path, manifest: Manifest) -> Opened:
    """Create an empty index in a new or empty ``path`` and lock it for writing.

    The FAISS index is built once, first (a factory faiss rejects leaves nothing behind), and
    its default search parameters join the manifest's before that is saved.
    """
    vectors = VectorIndex.new(manifest.dim, manifest.faiss_factory, manifest.metric)
    manifest = manifest.with_search_defaults(vectors.default_search_params())
    vectors.set_search_params({k: float(v) for k, v in manifest.search_params.items()})
    path.mkdir(parents=True, exist_ok=True)
    if any(p.name != LOCK_NAME for p in path.iterdir()):
        raise ArtifactError(f"{path} is not empty and holds no {MANIFEST_NAME}; choose a new or "
                            "empty directory (an interrupted create leaves such a one)")
    lock = DirectoryLock.acquire(path)
    try:
        store = Store.create(path / STORE_NAME, dim=manifest.dim)
        manifest.save(path)
    except BaseException:
        lock.release()
        raise
    log.info("created index %s (%s, d=%d)", path, manifest.faiss_factory, manifest.dim)
    return Opened(manifest, store, Recovered(vectors, store.last_seq(), dirty=True), lock)


def open_directory(path: Path, *, expect: Manifest | None, read_only: bool) -> Opened:
    """Load the manifest (checked against ``expect``), open the store, recover the FAISS index."""
    manifest = Manifest.load(path)
    if expect is not None:
        manifest.check_matches(expect)
    lock = None if read_only else DirectoryLock.acquire(path)
    try:
        store = Store.open(path / STORE_NAME, dim=manifest.dim, writable=lock is not None)
        try:
            if lock is not None:
                remove_stale_temporaries(path / SNAPSHOT_NAME)
                remove_stale_temporaries(path / MANIFEST_NAME)
            recovered = recover(path / SNAPSHOT_NAME, store, manifest)
        except BaseException:
            store.close()
            raise
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return Opened(manifest, store, recovered, lock)
