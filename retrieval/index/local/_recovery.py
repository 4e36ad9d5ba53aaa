"""Bringing the in-memory FAISS index up to date with the store on open.

:func:`recover` loads ``index.faiss`` when it is usable, then *replays* the store's changes newer
than the snapshot's ``seq``: ids added since (and not removed since) are added with their stored
vectors, ids removed since are removed. Because an id is never reused and the snapshot holds
exactly the changes up to its ``seq``, no replayed id can already be in the index: nothing is
ever added twice, whatever moment a crash interrupted the writer (between a store commit and the
next snapshot the FAISS index simply lags and is caught up here).

The snapshot is *not* used, and the index is rebuilt from every stored vector, when it is missing,
unreadable or damaged, belongs to another store (``store_uuid``), was made for another dimension
or factory, claims a ``seq`` beyond the store's last change (the store was restored from an older
copy), predates changes already pruned from the log, or when after replay the number of indexed
vectors differs from the number of stored images. Every such decision is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.errors import ArtifactError, ConfigError, NotFoundError
from retrieval.index._manifest import Manifest
from retrieval.index.local._faiss import RECOMMENDED_POINTS_PER_CENTROID, VectorIndex
from retrieval.index.local._snapshot import Snapshot, read_snapshot
from retrieval.index.local._store import Store

__all__ = ["Recovered", "catch_up", "fill_from_store", "rebuild", "recover", "train_from_store",
           "trained_from_store"]

log = logging.getLogger(__name__)

_BATCH = 10_000
TRAIN_SAMPLE_KEY = "train_sample"
TRAIN_SEED_KEY = "train_seed"


@dataclass
class Recovered:
    """The recovered index, the last change it contains, and whether it differs from the file."""

    vectors: VectorIndex
    seq: int
    dirty: bool


def recover(path: Path, store: Store, manifest: Manifest) -> Recovered:
    """Load ``path`` and replay newer changes, or rebuild from the store (module docstring)."""
    snapshot = _usable_snapshot(path, store, manifest)
    if snapshot is not None:
        try:
            return _replay_snapshot(snapshot, store, manifest)
        except (ArtifactError, NotFoundError, RuntimeError) as exc:
            log.warning("%s: cannot catch up from the snapshot (%s); rebuilding", path, exc)
    seq = store.last_seq()
    return Recovered(rebuild(store, manifest), seq, dirty=True)


def _usable_snapshot(path: Path, store: Store, manifest: Manifest) -> Snapshot | None:
    try:
        snapshot = read_snapshot(path)
    except FileNotFoundError:
        log.info("%s is missing; rebuilding the faiss index from the store", path)
        return None
    except (OSError, ArtifactError) as exc:
        log.warning("%s is unusable (%s); rebuilding the faiss index from the store", path, exc)
        return None
    problem = _mismatch(snapshot, store, manifest)
    if problem:
        log.warning("%s %s; rebuilding the faiss index from the store", path, problem)
        return None
    return snapshot


def _mismatch(snapshot: Snapshot, store: Store, manifest: Manifest) -> str | None:
    if snapshot.store_uuid != store.uuid:
        return "belongs to another store"
    if (snapshot.d, snapshot.factory, snapshot.metric) != (
            manifest.dim, manifest.faiss_factory, manifest.metric):
        return (f"was made for d={snapshot.d} {snapshot.factory!r} {snapshot.metric}, the "
                f"manifest says d={manifest.dim} {manifest.faiss_factory!r} {manifest.metric}")
    last = store.last_seq()
    if snapshot.seq > last:
        return f"is ahead of the store (snapshot seq {snapshot.seq} > store seq {last})"
    if snapshot.seq < store.pruned_through():
        return f"predates changes already pruned from the store (seq {snapshot.seq})"
    return None


def _replay_snapshot(snapshot: Snapshot, store: Store, manifest: Manifest) -> Recovered:
    vectors = VectorIndex.from_bytes(snapshot.payload, d=manifest.dim,
                                     factory=manifest.faiss_factory, metric=manifest.metric,
                                     tombstones=snapshot.tombstones)
    seq, added, removed = replay(vectors, store, snapshot.seq)
    if store.pruned_through() > snapshot.seq:
        raise ArtifactError("the change log was pruned while replaying")
    if vectors.is_trained and vectors.ntotal != store.count():
        raise ArtifactError(f"index holds {vectors.ntotal} vectors after replay, "
                            f"the store {store.count()} images")
    log.debug("loaded snapshot at seq %d and replayed %d adds, %d removes up to seq %d",
              snapshot.seq, added, removed, seq)
    return Recovered(vectors, seq, dirty=bool(added or removed))


def catch_up(vectors: VectorIndex, store: Store, since: int) -> tuple[int, int, int] | None:
    """Replay, in place, what another process committed after ``since`` (a reader following a
    writer); None when that is impossible (the log was pruned past ``since``, or a replayed id was
    removed meanwhile): the caller then reloads as on open, with :func:`recover`.
    """
    if store.pruned_through() > since:
        return None
    try:
        done = replay(vectors, store, since)
    except (NotFoundError, RuntimeError) as exc:
        log.info("cannot replay the change log (%s); reloading", exc)
        return None
    return None if store.pruned_through() > since else done


def replay(vectors: VectorIndex, store: Store, since: int) -> tuple[int, int, int]:
    """Apply the store's changes after ``since``; returns (last seq, #added, #removed)."""
    added: set[int] = set()
    removed: set[int] = set()
    last = since
    for change in store.changes_since(since):
        (added if change.op == "add" else removed).add(change.image_id)
        last = change.seq
    to_remove = sorted(removed - added)  # added after the snapshot *and* removed: never indexed
    to_add = sorted(added - removed)
    vectors.remove(to_remove)
    if vectors.is_trained:
        for start in range(0, len(to_add), _BATCH):
            chunk = to_add[start:start + _BATCH]
            vectors.add(np.asarray(chunk, dtype=np.int64), store.vectors(chunk))
    return last, len(to_add), len(to_remove)


def rebuild(store: Store, manifest: Manifest) -> VectorIndex:
    """A fresh index of every stored vector, retrained as last time if the type needs training."""
    vectors = VectorIndex.new(manifest.dim, manifest.faiss_factory, manifest.metric)
    if not vectors.is_trained:
        sample = store.get_meta(TRAIN_SAMPLE_KEY)
        if sample is None:
            log.info("%r needs training: the %d stored vectors wait for train()",
                     manifest.faiss_factory, store.count())
            return vectors
        log.warning("retraining %r on a sample of the store", manifest.faiss_factory)
        try:
            train_from_store(vectors, store, int(sample), int(store.get_meta(TRAIN_SEED_KEY) or 0))
        except ConfigError as exc:
            log.warning("cannot retrain (%s); vectors wait in the store for train()", exc)
            return vectors
    fill_from_store(vectors, store)
    log.info("rebuilt the faiss index from %d stored vectors", vectors.ntotal)
    return vectors


def fill_from_store(vectors: VectorIndex, store: Store) -> None:
    """Add every stored vector to a trained, empty index."""
    for ids, xb in store.iter_all(_BATCH):
        vectors.add(ids, xb)


def train_from_store(vectors: VectorIndex, store: Store, sample: int, seed: int) -> None:
    """Train on up to ``sample`` stored vectors drawn with ``seed``; ConfigError if too few."""
    ids = store.ids()
    need = vectors.min_training_points()
    available = min(sample, len(ids))
    if available < need:
        raise ConfigError(
            f"training this index needs at least {need} vectors "
            f"({RECOMMENDED_POINTS_PER_CENTROID * need} recommended); "
            f"{len(ids)} are stored and the sample is {sample}. Add more images or choose a "
            "smaller factory (e.g. fewer IVF lists)")
    if available < len(ids):
        rng = np.random.default_rng(seed)
        ids = np.sort(rng.choice(ids, size=available, replace=False))
    vectors.train(store.vectors(ids.tolist()))


def trained_from_store(store: Store, manifest: Manifest, sample: int,
                       seed: int) -> VectorIndex | None:
    """A new index trained on the store (still empty), or None if the type needs no training.

    The sample size and seed are remembered in the store, so that a rebuild retrains alike.
    """
    fresh = VectorIndex.new(manifest.dim, manifest.faiss_factory, manifest.metric)
    if fresh.is_trained:
        return None
    train_from_store(fresh, store, sample, seed)
    store.set_meta(TRAIN_SAMPLE_KEY, str(sample))
    store.set_meta(TRAIN_SEED_KEY, str(seed))
    return fresh
