"""Cleaning a folder of content-addressed files (the service's uploads) after a crash.

A killed write can leave two kinds of leftovers there: temporaries of
:func:`retrieval._atomic.write_atomic` (``.<name>.<random>.tmp``), and stored files
``<sha256><suffix>`` whose record never committed (the writer stores the file first, then commits
the record; a kill in between leaves the file alone). Neither was ever acknowledged, so both are
removed rather than re-attached: re-attaching would add an image no client was told about, and a
client that retries sends the bytes again. Only names of these two shapes are touched, so a folder
that also holds other files loses nothing else. Run it only while holding the index's write lock
(no other writer is between storing a file and committing its record).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from retrieval._atomic import TMP_SUFFIX, fsync_directory
from retrieval.errors import ConfigError
from retrieval.index.local._image_index import ImageIndex

__all__ = ["UPLOADS_DIR_NAME", "SweepReport", "sweep_files"]

log = logging.getLogger(__name__)

#: The service's uploads folder inside an index directory, unless configured elsewhere.
UPLOADS_DIR_NAME = "data"

_STORED = re.compile(r"[0-9a-f]{64}\.[a-z]{2,5}")


@dataclass(frozen=True)
class SweepReport:
    temporaries: int = 0
    orphans: int = 0


def sweep_files(index: ImageIndex, folder: Path) -> SweepReport:
    """Remove temporaries and unrecorded stored files from ``folder`` and its sub-folders
    (uploads given a ``folder``; module docstring)."""
    if index.read_only:
        raise ConfigError(f"sweeping {folder} needs the index {index.path} open for writing")
    if not folder.is_dir():
        return SweepReport()
    recorded = index.paths_present()
    temporaries = orphans = 0
    for directory in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        t, o = _sweep_one(directory, recorded)
        temporaries, orphans = temporaries + t, orphans + o
    if temporaries or orphans:
        log.info("%s: removed %d temporary files and %d stored files with no record",
                 folder, temporaries, orphans)
    return SweepReport(temporaries, orphans)


def _sweep_one(folder: Path, recorded: set[str]) -> tuple[int, int]:
    temporaries = orphans = 0
    for entry in folder.iterdir():
        if not entry.is_file():
            continue
        if entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX):
            temporaries += 1
        elif _STORED.fullmatch(entry.name) and str(entry.resolve()) not in recorded:
            orphans += 1
        else:
            continue
        entry.unlink(missing_ok=True)
    if temporaries or orphans:
        fsync_directory(folder)
    return temporaries, orphans
