"""Moving an index to another store without embedding anything: :func:`migrate_index`.

Everything an index holds that is not a function of the images alone is copied: the manifest
(how the vectors were made), the fitted state (MOP/VLAD codebooks, PCA-whitening), the folder it
was built from, and every record with its id, ``added_at``, stored (raw) vector and, where both
stores keep them, its layout descriptor. Ids are kept, so links to ``/images/{id}`` stay valid.
The records go in pages (:func:`stored_pages`), each one transaction on FAISS+SQLite.

What the target store cannot hold is said, in :attr:`MigrationReport.not_carried`, never dropped
silently: Milvus keeps no layout descriptors (the layout check of near-duplicates) and has no DBA
(its collection searches the raw vectors, so the target's manifest says ``dba_k=0``). Request
keys (answers of keyed HTTP adds, kept 24 h) are not copied.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from retrieval.errors import ArtifactError, ConfigError
from retrieval.index import (
    MANIFEST_NAME,
    ImageRecord,
    ImportsRecords,
    IndexStore,
    KeepsLayouts,
    KnowsSources,
    Manifest,
    StoreSpec,
    Trains,
    create_index,
)

__all__ = ["MigrationReport", "migrate_index", "stored_pages"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
PAGE = 2000


@dataclass
class MigrationReport:
    """What :func:`migrate_index` copied, and what the target store could not take."""

    records: int = 0
    layouts: int = 0
    state: list[str] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)


def stored_pages(index: IndexStore, page: int = PAGE) -> Iterator[tuple[list[ImageRecord], F32]]:
    """Every record with its stored vector, in ascending id order, ``page`` at a time."""
    cursor = 0
    while ids := index.ids_after(cursor, page):
        records = index.records(ids)
        yield records, index.stored_vectors([r.id for r in records])
        cursor = ids[-1]


def _target_manifest(source: IndexStore, store: StoreSpec,
                     report: MigrationReport) -> Manifest:
    manifest = source.manifest
    if store.kind == "milvus" and manifest.dba_k:
        report.not_carried.append(f"DBA (dba_k={manifest.dba_k}: a Milvus collection searches "
                                  "the raw vectors, so results follow plain search)")
        manifest = dataclasses.replace(manifest, dba_k=0)
    return manifest


def migrate_index(source: IndexStore, target: Path, store: StoreSpec, *,
                  page: int = PAGE) -> MigrationReport:
    """Copy ``source`` into a new index directory ``target`` whose vectors live in ``store``
    (module docstring). ``target`` must not hold an index yet; ``source`` is only read."""
    if (Path(target) / MANIFEST_NAME).exists():
        raise ArtifactError(f"{target} already holds an index; migrate into a new directory")
    if Path(target).resolve() == Path(source.path).resolve():
        raise ConfigError("the target directory must differ from the source")
    report = MigrationReport()
    manifest = _target_manifest(source, store, report)
    with create_index(target, manifest, store) as out:
        if not isinstance(out, ImportsRecords):
            raise ConfigError(f"a {store.kind} store cannot import records with their ids")
        blobs = source.load_state_blobs()
        if blobs:
            out.save_state_blobs(blobs)
        report.state = sorted(blobs)
        if isinstance(source, KnowsSources) and isinstance(out, KnowsSources):
            root = source.images_root
            if root:
                out.set_images_root(root)
        lost_layouts = _copy_records(source, out, report, page)
        if lost_layouts:
            report.not_carried.append(f"{lost_layouts} layout descriptors (a {store.kind} store "
                                      "keeps none: near-duplicates compare global vectors only)")
        if isinstance(out, Trains) and not out.is_trained and report.records:
            out.train()
        if out.count != source.count:
            raise ArtifactError(f"copied {out.count} of {source.count} records; the source "
                                "changed meanwhile: migrate again into a new directory")
    log.info("migrated %d records to %s", report.records, target)
    return report


def _copy_records(source: IndexStore, out: ImportsRecords, report: MigrationReport,
                  page: int) -> int:
    """Import every record page by page; returns how many layouts the target could not keep."""
    lost = 0
    keeps = isinstance(out, KeepsLayouts)
    for records, xb in stored_pages(source, page):
        layouts = (source.layouts([r.id for r in records]) if isinstance(source, KeepsLayouts)
                   else {})
        out.import_records(records, xb, dict(layouts) if keeps and layouts else None)
        report.records += len(records)
        if keeps:
            report.layouts += len(layouts)
        else:
            lost += len(layouts)
    return lost
