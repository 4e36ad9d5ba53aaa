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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import closing
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from retrieval._collection import Collection
from retrieval.features._extraction import Batch, Failure, Source, extract_batches
from retrieval.features._layout import layout_descriptors
from retrieval.images import DEFAULT_MAX_PIXELS
from retrieval.index import NewImage

__all__ = ["IngestReport", "ingest"]

log = logging.getLogger(__name__)

Progress = Callable[[int], object]


@dataclass
class IngestReport:
    """What one ingest call did: new ids (in input batches' order) and failures."""

    added: list[int] = field(default_factory=list)
    added_keys: list[str] = field(default_factory=list)
    failures: list[Failure[str]] = field(default_factory=list)


def ingest(
    collection: Collection,
    sources: Iterable[tuple[str, Source]],
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: Progress | None = None,
    atomic: bool = False,
) -> IngestReport:
    """Embed and add every source ``(path_to_record, file path or bytes)``; returns a report.

    ``batch_size`` and ``workers`` (images per forward pass, decode threads) default to
    :func:`~retrieval.features._extraction.default_batch_size` and
    :func:`~retrieval.features._extraction.default_workers`. ``atomic``: one commit for all
    (module docstring).
    """
    report = IngestReport()
    embedder = collection.embedder
    batches = extract_batches(embedder.backbone, sources, max_side=embedder.config.image_side,
                              batch_size=batch_size, workers=workers, max_pixels=max_pixels,
                              scales=embedder.config.scales)
    with closing(batches), _StoreWriter(collection, report, on_progress, atomic) as writer:
        for item in batches:
            if isinstance(item, Failure):
                log.warning("skipped %s", item.error)
                report.failures.append(item)
                if on_progress is not None:
                    on_progress(1)
            else:
                writer.submit(item)
    return report


class _StoreWriter:
    """Describes and stores batches in one background thread, at most one batch behind."""

    def __init__(self, collection: Collection, report: IngestReport,
                 on_progress: Progress | None, atomic: bool) -> None:
        self.collection = collection
        self.report = report
        self.on_progress = on_progress
        self.atomic = atomic
        self._held: list[tuple[list[NewImage], np.ndarray, np.ndarray]] = []
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
        embedder = self.collection.embedder
        xb = (embedder.describe_images(batch.per_image()) if batch.extra
              else embedder.describe(batch.fmaps))
        news = [NewImage(path=d.key, sha256=d.sha256, width=d.width, height=d.height)
                for d in batch.items]
        layouts = layout_descriptors(batch.fmaps)  # for near-duplicates: same maps, no forward
        if self.atomic:
            self._held.append((news, xb, layouts))
        else:
            self._commit(news, xb, layouts)
        return len(news)

    def _commit(self, news: list[NewImage], xb: np.ndarray, layouts: np.ndarray) -> None:
        self.report.added.extend(self.collection.index.add(news, xb, layouts))
        self.report.added_keys.extend(n.path for n in news)

    def _commit_held(self) -> None:
        if self._held:
            news = [n for batch, _, _ in self._held for n in batch]
            self._commit(news, np.concatenate([xb for _, xb, _ in self._held]),
                         np.concatenate([lay for _, _, lay in self._held]))
            self._held.clear()

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
