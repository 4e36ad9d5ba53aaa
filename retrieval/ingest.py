"""Adding images to a collection: decode, embed, store, in durable batches.

Every batch is committed to the store (SQLite) before the next is embedded, so an interrupted
run keeps everything up to its last batch, and a later run can skip what is already there.
Unreadable inputs are collected as failures; they never stop the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from retrieval.collection import Collection
from retrieval.extraction import Failure, Source, extract_batches
from retrieval.images import DEFAULT_MAX_PIXELS
from retrieval.store import NewImage

__all__ = ["IngestReport", "ingest"]

log = logging.getLogger(__name__)


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
    batch_size: int = 8,
    workers: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Embed and add every source ``(path_to_record, file path or bytes)``; returns a report."""
    report = IngestReport()
    embedder = collection.embedder
    for item in extract_batches(embedder.backbone, sources, max_side=embedder.config.image_side,
                                batch_size=batch_size, workers=workers, max_pixels=max_pixels):
        if isinstance(item, Failure):
            log.warning("skipped %s", item.error)
            report.failures.append(item)
            done = 1
        else:
            xb = embedder.describe(item.fmaps)
            news = [NewImage(path=d.key, sha256=d.sha256, width=d.width, height=d.height)
                    for d in item.items]
            report.added.extend(collection.index.add(news, xb))
            report.added_keys.extend(d.key for d in item.items)
            done = len(news)
        if on_progress is not None:
            on_progress(done)
    return report
