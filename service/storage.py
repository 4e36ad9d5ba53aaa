"""Uploaded image files: content-addressed, written atomically and fsynced before indexing.

A file is stored as ``<data_dir>/<sha256><suffix>`` (the suffix from the decoded format, never
from the client's file name): written to a temporary file, fsynced, renamed into place, then the
directory is fsynced, so once :func:`store_file` returns the bytes survive a crash. The same
content uploaded twice is one file.

An add request stores its files through an :class:`UploadFiles` and releases them once its commit
has succeeded or failed: a file no record points at (the commit failed, e.g. on a full disk) is
removed then, unless another request in flight has claimed the same content. A file whose record
never committed because the process died in between is removed when the server starts
(:func:`retrieval.index.sweep_files`). A full disk raises :class:`retrieval.StorageFullError`.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from retrieval import StorageFullError, fsync_directory, write_atomic

__all__ = ["UploadFiles", "ensure_dir", "store_file"]

log = logging.getLogger(__name__)

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: files claimed by requests in flight (this process is the index's only writer)
_CLAIMS: Counter[Path] = Counter()
_CLAIMS_LOCK = threading.Lock()

#: (path, sha256) -> whether a committed record points at that file
Recorded = Callable[[Path, str], bool]


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) durably if it does not exist."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fsync_directory(folder.parent)
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            raise StorageFullError(f"no space left to create {folder}: {exc.strerror}") from exc
        raise


def store_file(folder: Path, data: bytes, sha256: str, suffix: str) -> Path:
    """Write ``data`` (whose digest is ``sha256``) durably as ``folder/<sha256><suffix>``."""
    ensure_dir(folder)
    target = (folder / f"{sha256}{suffix}").resolve()
    if target.is_file() and target.stat().st_size == len(data):
        return target
    write_atomic(target, data)
    return target


class UploadFiles:
    """The files one add request stores; :meth:`release` removes those left without a record."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._claimed: list[tuple[Path, str]] = []

    def store(self, data: bytes, sha256: str, suffix: str) -> Path:
        """:func:`store_file`, the file claimed until :meth:`release`."""
        target = (self.folder / f"{sha256}{suffix}").resolve()
        with _CLAIMS_LOCK:
            _CLAIMS[target] += 1
        self._claimed.append((target, sha256))
        return store_file(self.folder, data, sha256, suffix)

    def release(self, recorded: Recorded) -> None:
        """Drop this request's claims; remove each file no record points at and no one claims."""
        claimed, self._claimed = self._claimed, []
        for path, sha256 in claimed:
            with _CLAIMS_LOCK:
                _CLAIMS[path] -= 1
                if _CLAIMS[path] > 0:
                    continue
                del _CLAIMS[path]
                _remove_unrecorded(path, sha256, recorded)


def _remove_unrecorded(path: Path, sha256: str, recorded: Recorded) -> None:
    try:
        if recorded(path, sha256) or not path.exists():
            return
        path.unlink()
    except Exception as exc:  # keep the file: the sweep at the next start removes it
        log.warning("could not check or remove the uncommitted upload %s: %s", path, exc)
        return
    log.warning("removed %s: the add that stored it did not commit", path.name)
