"""Uploaded image files: content-addressed, written atomically and fsynced before indexing.

A file is stored as ``<data_dir>/<sha256><suffix>`` (the suffix from the decoded format, never
from the client's file name): written to a temporary file, fsynced, renamed into place, then the
directory is fsynced, so once :func:`store_file` returns the bytes survive a crash. The same
content uploaded twice is one file. A file whose record never committed (a crash in between) is
removed when the server starts (:func:`retrieval.index.sweep_files`).
"""

from __future__ import annotations

from pathlib import Path

from retrieval import fsync_directory, write_atomic

__all__ = ["ensure_dir", "store_file"]


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) durably if it does not exist."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    fsync_directory(folder.parent)


def store_file(folder: Path, data: bytes, sha256: str, suffix: str) -> Path:
    """Write ``data`` (whose digest is ``sha256``) durably as ``folder/<sha256><suffix>``."""
    ensure_dir(folder)
    target = (folder / f"{sha256}{suffix}").resolve()
    if target.is_file() and target.stat().st_size == len(data):
        return target
    write_atomic(target, data)
    return target
