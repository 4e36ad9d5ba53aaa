"""Moving an index to another store without embedding anything: :func:`migrate_index`.

Everything an index holds that is not a function of the images alone is copied: the manifest
(how the vectors were made), the fitted state (MOP/VLAD codebooks, PCA-whitening), the folder it
was built from, and every record with its id, ``added_at``, stored (raw) vector and, where both
stores keep them, its layout descriptor. Ids are kept, so links to ``/images/{id}`` stay valid.
The records go in pages (:func:`stored_pages`), each one transaction on FAISS+SQLite.

HTTP uploads kept in the source's default uploads folder (``<index>/data``) are copied into the
target's, and their records point there (an uploads folder elsewhere, ``CBIR_DATA_DIR``, is left
where it is: its records keep their paths).

What the target store cannot hold is said, in :attr:`MigrationReport.not_carried`, never dropped
silently: Milvus has no DBA (its collection searches the raw vectors, so the target's manifest
says ``dba_k=0``) and keeps no neighbour graph (``graph_k=0``: diffusion is then refused there
with a sentence); layouts and tags are copied where the target keeps them (both engines do
now), and a target without layouts would be named. Request keys (answers of keyed HTTP adds,
kept 24 h) are not copied.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from retrieval.errors import ArtifactError, ConfigError
from retrieval.index import (
    MANIFEST_NAME,
    UPLOADS_DIR_NAME,
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
    uploads: int = 0  # files copied from the source's uploads folder
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
    if store.kind == "milvus" and manifest.graph_k:
        report.not_carried.append(f"the neighbour graph (graph_k={manifest.graph_k}: a Milvus "
                                  "collection keeps none, so diffusion is refused there)")
        manifest = dataclasses.replace(manifest, graph_k=0)
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
        moved = _copy_uploads(Path(source.path), Path(target), report)
        lost_layouts = _copy_records(source, out, report, page, moved)
        if lost_layouts:
            report.not_carried.append(f"{lost_layouts} layout descriptors (a {store.kind} store "
                                      "keeps none: near-duplicates compare global vectors only)")
        if isinstance(out, Trains) and not out.is_trained and report.records:
            out.train()
        if out.count != source.count:
            raise ArtifactError(f"copied {out.count} of {source.count} records; the source "
                                "changed meanwhile: migrate again into a new directory")
    log.debug("migrated %d records to %s", report.records, target)
    return report


def _copy_uploads(source: Path, target: Path, report: MigrationReport) -> tuple[str, str] | None:
    """Copy ``source/data`` (uploads) to ``target/data``: (old prefix, new prefix), or None."""
    old = (source / UPLOADS_DIR_NAME).resolve()
    if not old.is_dir():
        return None
    new = target.resolve() / UPLOADS_DIR_NAME
    shutil.copytree(old, new, dirs_exist_ok=True)
    report.uploads = sum(1 for p in new.rglob("*") if p.is_file())
    return str(old) + "/", str(new) + "/"


def _copy_records(source: IndexStore, out: ImportsRecords, report: MigrationReport,
                  page: int, uploads: tuple[str, str] | None) -> int:
    """Import every record page by page; returns how many layouts the target could not keep."""
    lost = 0
    keeps = isinstance(out, KeepsLayouts)
    for records, xb in stored_pages(source, page):
        if uploads is not None:
            old, new = uploads
            records = [dataclasses.replace(r, path=new + r.path[len(old):])
                       if r.path.startswith(old) else r for r in records]
        layouts = (source.layouts([r.id for r in records]) if isinstance(source, KeepsLayouts)
                   else {})
        out.import_records(records, xb, dict(layouts) if keeps and layouts else None)
        report.records += len(records)
        if keeps:
            report.layouts += len(layouts)
        else:
            lost += len(layouts)
    return lost
