"""Locks of an open index: readers/writer within a process, one writer per directory across them.

FAISS allows concurrent searches but nothing concurrent with ``add``/``remove``, so an
:class:`~retrieval.index.local.ImageIndex` takes :meth:`ReadWriteLock.read` to search and
:meth:`ReadWriteLock.write` to change. Waiting writers block new readers, so a steady stream of
searches cannot starve an add. Neither side is re-entrant.

:class:`DirectoryLock` is an advisory ``flock`` on ``<index>/lock``: a second process (or a second
:class:`~retrieval.index.local.ImageIndex` in the same one) opening the directory for writing is
refused instead of racing on the snapshot. The kernel drops the lock when its holder dies, so a
crash never leaves the directory locked.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retrieval.errors import ArtifactError

__all__ = ["LOCK_NAME", "DirectoryLock", "ReadWriteLock"]

LOCK_NAME = "lock"


class ReadWriteLock:
    """Many readers or one writer; writers are preferred once waiting."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            except BaseException:
                self._writers_waiting -= 1
                self._cond.notify_all()
                raise
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class DirectoryLock:
    """An exclusive, non-blocking ``flock`` on ``directory/lock``, held until :meth:`release`."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, directory: Path) -> DirectoryLock:
        path = Path(directory) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ArtifactError(
                f"{directory} is already open for writing (by this or another process): a cbir "
                "server with CBIR_API_KEY set owns it, so add or remove images through its HTTP "
                "API (POST /images, DELETE /images/{id}); a `cbir index watch` owns it, so put "
                "files in (or take them out of) its folder; or wait for the other cbir index "
                "command to finish") from exc
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
