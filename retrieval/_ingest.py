"""Adding images to a collection: decode, embed, store, in durable batches.

Every batch is committed to the store (SQLite, one transaction with its fsync) by a background
writer thread while the next batch is being embedded: the commit waits on the disk, not on the
processor, so it hides behind the network. At most one batch is in flight, and ``ingest`` waits
for it before returning or raising (Ctrl-C included), so an interrupted run keeps every batch that
was embedded before the interruption (a hard kill can lose the one in flight) and a later run can
skip what is already there. Unreadable inputs are collected as failures; they never stop the run.

With ``atomic=True`` the batches are described as they come but committed together, in one
transaction after the last one: every readable input becomes visible and durable at once, or
(interrupted, killed) none does. That is how ``cbir index add`` adds an explicit list of files.

With ``replacing=`` (what :func:`plan_by_path` found: a file re-added at a stored path with
other content) each such input's old records are removed in the transaction that adds it, so the
path never has both, or neither. :func:`plan_by_path` is how ``cbir index add`` is idempotent per
path: a file already stored at its path with the same content is not embedded again.
``removing=`` (ids) and ``repointing=`` (id -> new path: moved files, kept without embedding)
ride on the same transaction (a sync batch, :mod:`retrieval._sync`); when nothing could be decoded
they are committed alone, still in one transaction. Both need ``atomic=True``.

With ``unique=`` (:class:`UniqueAdd`: an HTTP add) the run is atomic and all-or-nothing: the first
unreadable input raises its :class:`~retrieval.errors.ImageDecodeError` and nothing is added;
otherwise every input, in input order, goes through one
:meth:`~retrieval.index.ImageIndex.add_unique` (content already stored is not added again, a
request key replays its first answer) and the report carries its outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from retrieval._collection import Collection
from retrieval.errors import ConfigError
from retrieval.features import Batch, Decoded, Failure, Source
from retrieval.images import DEFAULT_MAX_PIXELS, sha256_hex
from retrieval.index import (
    DEFAULT_KEY_TTL_S,
    AddOutcome,
    DedupesContent,
    ImageRecord,
    IndexStore,
    KeepsLayouts,
    KeepsRequestKeys,
    KnowsSources,
    NewImage,
    ReplacesRecords,
    clean_tags,
)

__all__ = ["IngestReport", "PathPlan", "UniqueAdd", "ingest", "plan_by_path"]

log = logging.getLogger(__name__)

Progress = Callable[[int], object]
_PAGE = 10_000


@dataclass
class IngestReport:
    """What one ingest call did: new ids (in input batches' order) and failures."""

    added: list[int] = field(default_factory=list)
    added_keys: list[str] = field(default_factory=list)
    failures: list[Failure[str]] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)  # old ids of re-added, changed files
    outcome: AddOutcome | None = None  # with ``unique=``: add_unique's answer, in input order


@dataclass(frozen=True)
class UniqueAdd:
    """An all-or-nothing add through :meth:`~retrieval.index.ImageIndex.add_unique`.

    ``place`` gives the path to record for a decoded input (called once per input, in input
    order, after every input decoded: e.g. where its uploaded file is stored).
    """

    place: Callable[[Decoded[str]], str]
    request_key: str | None = None
    fingerprint: str = ""
    key_ttl_s: float = DEFAULT_KEY_TTL_S


def ingest(
    collection: Collection,
    sources: Iterable[tuple[str, Source]],
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: Progress | None = None,
    atomic: bool = False,
    unique: UniqueAdd | None = None,
    replacing: Mapping[str, Sequence[int]] | None = None,
    removing: Sequence[int] = (),
    repointing: Mapping[int, str] | None = None,
    tags: Sequence[str] = (),
) -> IngestReport:
    """Embed and add every source ``(path_to_record, file path or bytes)``; returns a report.

    ``batch_size`` and ``workers`` (images per forward pass, decode threads) default to
    :func:`~retrieval.features.default_batch_size` and
    :func:`~retrieval.features.default_workers`. ``atomic``: one commit for all; ``unique``:
    one all-or-nothing :meth:`add_unique`; ``replacing``: path -> the ids its new record replaces
    (module docstring); ``removing`` and ``repointing`` (with ``atomic``): ids removed, ids given
    a new path, in the transaction that adds (or on their own when nothing could be added);
    ``tags``: every new record holds them (a duplicate's record keeps its own).
    """
    tags = clean_tags(tags)
    riders = _Riders(replacing or {}, list(removing), dict(repointing or {}))
    if riders.any() and not isinstance(collection.index, ReplacesRecords):
        raise ConfigError("this store cannot replace records in the transaction that adds")
    if (riders.removing or riders.repointing) and not atomic:
        raise ConfigError("removing= and repointing= need atomic=True (one transaction)")
    report = IngestReport()
    batches = collection.embedder.extract(sources, batch_size=batch_size, workers=workers,
                                          max_pixels=max_pixels)
    with closing(batches), _StoreWriter(collection, report, on_progress,
                                        atomic or unique is not None, unique,
                                        riders, tags) as writer:
        for item in batches:
            if isinstance(item, Failure):
                if unique is not None:
                    raise item.error
                log.warning("skipped %s", item.error)
                report.failures.append(item)
                if on_progress is not None:
                    on_progress(1)
            else:
                writer.submit(item)
    return report


@dataclass(frozen=True)
class PathPlan:
    """What to do with each file of an add, by its path (:func:`plan_by_path`)."""

    todo: list[tuple[str, Path]]  # new paths and changed files: to embed, in input order
    unchanged: dict[str, int]  # path -> the stored id that already holds this very content
    replacing: dict[str, list[int]]  # changed file's path -> the ids of its old records


def plan_by_path(index: IndexStore, files: Sequence[tuple[str, Path]]) -> PathPlan:
    """Sort ``(path to record, file)`` pairs against what ``index`` stores at those paths.

    A file whose every record at its path has its sha256 is unchanged (skipped); one stored at
    its path with other content is changed (embedded again, replacing those records); the rest
    are new. A path given twice counts once. A store that cannot list its records and replace
    them in one transaction gets every file as new (the behaviour before paths were records).
    """
    first: dict[str, Path] = {}
    for key, path in files:
        first.setdefault(key, path)
    unique = list(first.items())
    if not (isinstance(index, KnowsSources) and isinstance(index, KeepsLayouts)
            and isinstance(index, ReplacesRecords)):
        return PathPlan(unique, {}, {})
    present = index.paths_present()
    stored = _records_at(index, index, {key for key, _ in unique if key in present})
    todo: list[tuple[str, Path]] = []
    unchanged: dict[str, int] = {}
    replacing: dict[str, list[int]] = {}
    for key, path in unique:
        records = stored.get(key)
        digest = _file_sha256(path) if records else None
        if records and digest is not None and all(r.sha256 == digest for r in records):
            unchanged[key] = min(r.id for r in records)
            continue
        if records:
            replacing[key] = sorted(r.id for r in records)
        todo.append((key, path))
    return PathPlan(todo, unchanged, replacing)


def _records_at(index: IndexStore, pages: KeepsLayouts,
                paths: set[str]) -> dict[str, list[ImageRecord]]:
    """Every stored record whose path is in ``paths`` (one pass over the ids, in pages)."""
    found: dict[str, list[ImageRecord]] = {}
    cursor = 0
    while paths:
        ids = pages.ids_after(cursor, _PAGE)
        if not ids:
            break
        for record in index.records(ids):
            if record.path in paths:
                found.setdefault(record.path, []).append(record)
        cursor = ids[-1]
    return found


def _file_sha256(path: Path) -> str | None:
    try:
        return sha256_hex(path.read_bytes())
    except OSError:
        return None  # embedded again: the decode reports why it cannot be read


@dataclass
class _Riders:
    """What commits with the adds: the old records of changed files (by path), then ids removed
    and moved records re-pointed, which go with the first commit only (:meth:`take`)."""

    replacing: Mapping[str, Sequence[int]]
    removing: list[int]
    repointing: dict[int, str]

    def any(self) -> bool:
        return bool(self.replacing or self.removing or self.repointing)

    def take(self, keys: Iterable[str]) -> tuple[list[int], dict[int, str]]:
        """The ids to remove and the moves to apply with the adds of ``keys``."""
        old = [i for key in keys for i in self.replacing.get(key, ())] + self.removing
        moves, self.removing, self.repointing = self.repointing, [], {}
        return old, moves


class _StoreWriter:
    """Describes and stores batches in one background thread, at most one batch behind."""

    def __init__(self, collection: Collection, report: IngestReport,
                 on_progress: Progress | None, atomic: bool, unique: UniqueAdd | None,
                 riders: _Riders, tags: tuple[str, ...]) -> None:
        self.collection = collection
        self.tags = tags
        self.riders = riders
        self.report = report
        self.on_progress = on_progress
        self.atomic = atomic
        self.unique = unique
        self._held: list[tuple[list[Decoded[str]], np.ndarray, np.ndarray]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._pending: Future[int] | None = None

    def submit(self, batch: Batch[str]) -> None:
        """Store ``batch`` in the background once the previous batch is stored."""
        self.wait()
        self._pending = self._pool.submit(self._store, batch)

    def wait(self) -> None:
        """Wait for the batch in flight; re-raise its error; report its progress."""
        pending, self._pending = self._pending, None
        if pending is not None:
            done = pending.result()
            if self.on_progress is not None:
                self.on_progress(done)

    def _store(self, batch: Batch[str]) -> int:
        xb, layouts = self.collection.embedder.describe_batch(batch)
        if self.atomic:
            self._held.append((batch.items, xb, layouts))
        else:
            self._commit(batch.items, xb, layouts)
        return len(batch.items)

    def _commit(self, items: list[Decoded[str]], xb: np.ndarray,
                layouts: np.ndarray | None) -> None:
        news = [NewImage(path=d.key, sha256=d.sha256, width=d.width, height=d.height,
                         tags=self.tags) for d in items]
        old, moves = self.riders.take(d.key for d in items)
        index = self.collection.index
        if (old or moves) and isinstance(index, ReplacesRecords):
            self.report.added.extend(index.replace(old, news, xb, layouts, moves=moves))
            self.report.replaced.extend(old)
        else:
            self.report.added.extend(index.add(news, xb, layouts))
        self.report.added_keys.extend(n.path for n in news)

    def _commit_held(self) -> None:
        if not self._held:
            if self.riders.removing or self.riders.repointing:  # nothing decoded: they alone
                d = self.collection.index.d
                self._commit([], np.empty((0, d), dtype=np.float32), None)
            return
        items = [d for batch, _, _ in self._held for d in batch]
        xb = np.concatenate([xb for _, xb, _ in self._held])
        layouts = np.concatenate([lay for _, _, lay in self._held])
        self._held.clear()
        if self.unique is None:
            self._commit(items, xb, layouts)
            return
        order = sorted(range(len(items)), key=lambda i: items[i].position)  # input order
        self._commit_unique([items[i] for i in order], xb[order], layouts[order], self.unique)

    def _commit_unique(self, items: list[Decoded[str]], xb: np.ndarray, layouts: np.ndarray,
                       unique: UniqueAdd) -> None:
        news = [NewImage(path=unique.place(d), sha256=d.sha256, width=d.width, height=d.height,
                         tags=self.tags) for d in items]
        index = self.collection.index
        if unique.request_key is not None and isinstance(index, KeepsRequestKeys):
            outcome = index.add_unique(news, xb, layouts=layouts, request_key=unique.request_key,
                                       fingerprint=unique.fingerprint,
                                       key_ttl_s=unique.key_ttl_s)
        elif unique.request_key is None and isinstance(index, DedupesContent):
            outcome = index.add_unique(news, xb, layouts=layouts)
        else:
            raise ConfigError("this store cannot add uploads once per content"
                              + (" with a request key" if unique.request_key else ""))
        self.report.outcome = outcome
        self.report.added.extend(outcome.new_ids)
        if not outcome.replayed:
            self.report.added_keys.extend(
                n.path for n, a in zip(news, outcome.added, strict=True) if not a.duplicate)

    def __enter__(self) -> _StoreWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.wait()
                self._commit_held()
            elif self._pending is not None:  # let the last commit finish before the index closes
                wait_for([self._pending])
        finally:
            self._pool.shutdown(wait=True)
