"""Crash-safe whole-file replacement: a reader sees the old bytes or the new ones, never a mix.

The recipe trusted stores use: write a temporary file in the *same* directory, ``fsync`` it,
``os.replace`` it over the target (atomic on POSIX within one filesystem), then ``fsync`` the
directory so the rename itself survives a power cut. A crash before the rename leaves the old file
and a stray ``.tmp`` file, which the next write replaces or :func:`remove_stale_temporaries`
deletes. A full disk or quota (``ENOSPC``, ``EDQUOT``) raises
:class:`~retrieval.errors.StorageFullError`, the temporary file removed.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path

from retrieval.errors import StorageFullError

__all__ = ["TMP_SUFFIX", "fsync_directory", "remove_stale_temporaries", "write_atomic"]

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
#: errno values that mean "the disk or the quota is full"
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def fsync_directory(directory: Path) -> None:
    """Flush a directory entry (a create, rename or unlink in it) to stable storage."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically and durably (see the module docstring)."""
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        fsync_directory(directory)
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise StorageFullError(f"no space left to write {path}: {exc.strerror}") from exc
        raise


def remove_stale_temporaries(path: Path) -> None:
    """Delete temporaries a crashed :func:`write_atomic` of ``path`` may have left behind."""
    for stale in path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"):
        log.info("removing stale temporary %s", stale)
        stale.unlink(missing_ok=True)
