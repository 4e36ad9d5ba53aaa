"""Keeping an index in step with a folder: scan it, plan (:mod:`._sync_plan`), apply the plan.

:func:`sync_folder` is one reconcile (``cbir index sync``, and ``cbir index watch`` on start);
the watcher then runs :func:`sync_paths` on the paths its events name, with the
:class:`StoredFiles` view it keeps (it is the index's one writer). Applying a plan embeds only the
new and changed files; what is atomic depends on the store:

* a store that :class:`~retrieval.index.ReplacesRecords` (the local FAISS+SQLite engine) commits
  the whole batch — moved records re-pointed, vanished ones removed, changed ones replaced, new
  ones added, the kept neighbour graph's rows with them — in ONE SQLite transaction
  (``ingest(atomic=True, replacing=, removing=, repointing=)``; a batch of moves or removals
  only, or whose files all failed to decode, is that transaction alone); FAISS and the DBA
  vectors follow in memory once it has committed (a re-point changes no vector, so neither
  they nor the graph see it). A failed commit (a full disk) or a kill leaves the index as it
  was before the batch, and the next reconcile plans and applies the whole batch again;
* a store without it (Milvus: no multi-row transactions) applies the batch in steps: the moves
  (:class:`~retrieval.index.RepointsRecords`, an upsert per record), then the new and changed
  files' records (one add), then the old and vanished records removed. A changed file has, for
  a moment, both records, never neither; an interrupted run leaves a prefix of those steps, and
  the next reconcile finishes the job (the plan compares paths and content, not what was done;
  a changed file caught between its add and its removal is embedded once more).

Stamps (:class:`FileStamp`: size, mtime and sha256 last seen) are kept in a JSON file given by
the caller; they only spare reading unchanged files, so a lost or stale stamps file costs a
re-read, never a wrong answer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from retrieval._atomic import write_atomic
from retrieval._collection import Collection
from retrieval._ingest import IngestReport, ingest
from retrieval._sync_plan import FileStamp, SyncPlan, plan_sync, within
from retrieval.errors import ConfigError
from retrieval.images import IMAGE_SUFFIXES, list_images, sha256_hex
from retrieval.index import IndexStore, ReplacesRecords, RepointsRecords, SelectsRecords

__all__ = ["StoredFiles", "SyncReport", "load_stamps", "save_stamps", "scan_folder",
           "sync_folder", "sync_paths"]

log = logging.getLogger(__name__)

_PAGE = 10_000
STAMPS_VERSION = 2


@dataclass
class SyncReport:
    """What one reconcile did: its plan and what embedding the new and changed files did."""

    plan: SyncPlan
    ingest: IngestReport = field(default_factory=IngestReport)

    def counts(self) -> dict[str, int]:
        counts = self.plan.counts()
        counts["added"] = sum(1 for k in self.ingest.added_keys if k not in self.plan.reembed)
        counts["reembedded"] = sum(1 for k in self.ingest.added_keys if k in self.plan.reembed)
        counts["failed"] = len(self.ingest.failures)
        return counts


class StoredFiles:
    """path -> ``(id, sha256)`` of the records an index holds under a folder, kept current by
    the one process that writes (:meth:`update` after each applied plan)."""

    def __init__(self, by_path: dict[str, list[tuple[int, str]]]) -> None:
        self.by_path = by_path

    @classmethod
    def read(cls, index: IndexStore, root: Path) -> StoredFiles:
        """Every record under ``root`` (read in pages of ids)."""
        prefix = str(root).rstrip("/") + "/"
        by_path: dict[str, list[tuple[int, str]]] = {}
        for ids in _ids_under(index, str(root)):
            for r in index.records(ids):
                if r.path.startswith(prefix):
                    by_path.setdefault(r.path, []).append((r.id, r.sha256))
        return cls(by_path)

    def under(self, roots: Iterable[str]) -> dict[str, list[tuple[int, str]]]:
        return {p: self.by_path[p] for p in within(self.by_path, roots)}

    def update(self, report: SyncReport, index: IndexStore) -> None:
        """Apply what ``report`` changed in the store to this view."""
        plan = report.plan
        gone = set(plan.remove) | set(report.ingest.replaced)
        by_path: dict[str, list[tuple[int, str]]] = {}
        for path, records in self.by_path.items():
            for image_id, sha in records:
                if image_id not in gone:
                    by_path.setdefault(plan.repoint.get(image_id, path), []).append(
                        (image_id, sha))
        for r in index.records(report.ingest.added):
            by_path.setdefault(r.path, []).append((r.id, r.sha256))
        self.by_path = by_path


def _ids_under(index: IndexStore, folder: str) -> Iterator[list[int]]:
    """Pages of the ids that may lie under ``folder``: from the store's path index where it has
    one (:class:`SelectsRecords`), else every id."""
    if isinstance(index, SelectsRecords):
        ids = index.ids_matching(folder, None, None)
        for start in range(0, len(ids), _PAGE):
            yield ids[start:start + _PAGE]
        return
    cursor = 0
    while ids := index.ids_after(cursor, _PAGE):
        yield ids
        cursor = ids[-1]


def _stat(path: Path) -> tuple[str, tuple[int, int]] | None:
    try:
        resolved = path.resolve()
        st = resolved.stat()
    except OSError:
        return None
    return str(resolved), (st.st_size, st.st_mtime_ns)


def scan_folder(root: Path, *, exclude: Path | None = None) -> dict[str, tuple[int, int]]:
    """path (resolved, as builds store it) -> ``(size, mtime_ns)`` of every image under
    ``root``, leaving out anything under ``exclude`` (an index directory inside the folder)."""
    skip = str(exclude.resolve()).rstrip("/") + "/" if exclude is not None else None
    out: dict[str, tuple[int, int]] = {}
    for path in list_images(root):
        found = _stat(path)
        if found is not None and not (skip and found[0].startswith(skip)):
            out[found[0]] = found[1]
    return out


def _is_listed(path: Path, root: Path) -> bool:
    """Whether :func:`list_images` of ``root`` would list ``path`` (an image, nothing hidden)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    return (path.suffix.lower() in IMAGE_SUFFIXES and not any(p.startswith(".") for p in parts)
            and path.is_file())


def _scan_paths(root: Path, paths: Iterable[str],
                exclude: Path | None) -> dict[str, tuple[int, int]]:
    """:func:`scan_folder` of each of ``paths`` that is a folder, the stat of each image file."""
    skip = str(exclude.resolve()).rstrip("/") + "/" if exclude is not None else None
    out: dict[str, tuple[int, int]] = {}
    for name in paths:
        path = Path(name)
        if path.is_dir() and not any(p.startswith(".") for p in path.relative_to(root).parts):
            out.update(scan_folder(path, exclude=exclude))
        elif _is_listed(path, root):
            found = _stat(path)
            if found is not None and not (skip and found[0].startswith(skip)):
                out[found[0]] = found[1]
    return out


def _digest(path: str) -> str | None:
    try:
        return sha256_hex(Path(path).read_bytes())
    except OSError:
        return None


def load_stamps(path: Path) -> dict[str, FileStamp]:
    """The stamps saved at ``path`` (none when the file is missing or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != STAMPS_VERSION:
            return {}
        return {p: FileStamp(int(s), int(m), str(h), bool(u))
                for p, (s, m, h, u) in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.debug("no usable stamps at %s: every stored file is read once", path)
        return {}


def save_stamps(path: Path, stamps: Mapping[str, FileStamp]) -> None:
    data = {"version": STAMPS_VERSION,
            "files": {p: [s.size, s.mtime_ns, s.sha256, s.unreadable]
                      for p, s in sorted(stamps.items())}}
    write_atomic(path, json.dumps(data).encode("utf-8"))


def apply_plan(collection: Collection, plan: SyncPlan, *, batch_size: int | None = None,
               workers: int | None = None) -> SyncReport:
    """Apply ``plan``: in one transaction where the store :class:`ReplacesRecords`, else in
    steps (module docstring)."""
    index = collection.index
    todo = [(p, Path(p)) for p in [*plan.add, *plan.reembed]]
    if isinstance(index, ReplacesRecords):
        report = ingest(collection, todo, batch_size=batch_size, workers=workers, atomic=True,
                        replacing=plan.reembed, removing=plan.remove, repointing=plan.repoint)
        return SyncReport(plan, report)
    if plan.repoint and not isinstance(index, RepointsRecords):
        raise ConfigError("this store cannot re-point records to moved files")
    if plan.repoint and isinstance(index, RepointsRecords):
        index.repoint(plan.repoint)
    # added first, then the old records removed: for a moment both, never neither
    report = ingest(collection, todo, batch_size=batch_size, workers=workers, atomic=True)
    old = [i for ids in plan.reembed.values() for i in ids] + plan.remove
    report.replaced.extend(index.remove(old) if old else [])
    return SyncReport(plan, report)


def _stamped(report: SyncReport, index: IndexStore) -> dict[str, FileStamp]:
    """The plan's stamps with the sha256 of every file just embedded (failures unstamped)."""
    stamps = dict(report.plan.stamps)
    for r in index.records(report.ingest.added):
        stamp = stamps.get(r.path)
        if stamp is not None:
            stamps[r.path] = FileStamp(stamp.size, stamp.mtime_ns, r.sha256)
    for failure in report.ingest.failures:
        stamp = stamps.get(str(failure.key))
        if stamp is not None:
            stamps[str(failure.key)] = FileStamp(stamp.size, stamp.mtime_ns, unreadable=True)
    return stamps


def sync_folder(collection: Collection, root: Path, stamps_file: Path, *,
                batch_size: int | None = None, workers: int | None = None,
                exclude: Path | None = None) -> tuple[SyncReport, StoredFiles]:
    """Reconcile the index with every image under ``root``; returns what was done and the view
    of the stored files after it (for a watcher to carry on with)."""
    root = root.resolve()
    stored = StoredFiles.read(collection.index, root)
    scanned = scan_folder(root, exclude=exclude)
    stamps = load_stamps(stamps_file)
    plan = plan_sync(stored.by_path, scanned, stamps, _digest)
    report = apply_plan(collection, plan, batch_size=batch_size, workers=workers)
    others = set(stamps) - within(stamps, [str(root)])  # other folders synced into this index
    save_stamps(stamps_file, {**{p: stamps[p] for p in others},
                              **_stamped(report, collection.index)})
    stored.update(report, collection.index)
    return report, stored


def sync_paths(collection: Collection, root: Path, stored: StoredFiles, paths: Iterable[str],
               stamps: dict[str, FileStamp], *, batch_size: int | None = None,
               workers: int | None = None, exclude: Path | None = None) -> SyncReport:
    """Reconcile only ``paths`` (files or folders under ``root`` that an event named) against
    ``stored``; updates ``stored`` and ``stamps`` in place.

    A new file whose content is stored at a path that no longer exists is a move whose other
    half has not been reported yet (events come late, or out of order: a folder created and
    filled at once is listed before the move into it is reported): that path joins the batch.
    """
    root = root.resolve()
    roots = [p for p in (str(Path(p).absolute()) for p in paths)
             if within([p], [str(root)])]
    scanned = _scan_paths(root, roots, exclude)
    seen = dict(stamps)
    roots += _moved_from(stored, scanned, seen)
    plan = plan_sync(stored.under(roots), scanned, seen, _digest)
    if plan.empty:
        stamps.update(plan.stamps)
        return SyncReport(plan)
    report = apply_plan(collection, plan, batch_size=batch_size, workers=workers)
    for path in within(stamps, roots):
        stamps.pop(path)
    stamps.update(_stamped(report, collection.index))
    stored.update(report, collection.index)
    return report


def _moved_from(stored: StoredFiles, scanned: Mapping[str, tuple[int, int]],
                seen: dict[str, FileStamp]) -> list[str]:
    """Stored paths that vanished and hold the content of a new scanned file (``seen`` gets
    the new files' stamps, so they are read once)."""
    new = [p for p in scanned if p not in stored.by_path]
    if not new:
        return []
    by_sha: dict[str, list[str]] = {}
    for path, records in stored.by_path.items():
        for _, content in records:
            by_sha.setdefault(content, []).append(path)
    found: list[str] = []
    for path in new:
        sha = _digest(path)
        if sha is not None:
            seen[path] = FileStamp(*scanned[path], sha)
            found += [p for p in by_sha.get(sha, [])
                      if p not in scanned and not os.path.exists(p)]
    return found
