"""A real, small file system for disk-full tests: a size-limited tmpfs mounted in the test's folder.

Mounting needs root (the project's CI runs as root); elsewhere the tests that need it are skipped
with the reason. :func:`fill` then takes every free block but ``leave`` bytes with one file, so the
next write of the code under test gets ``ENOSPC`` for real, and deleting that file frees the space
again.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["FILLER", "fill", "free_bytes", "small_disk"]

FILLER = "filler.bin"
_CHUNK = b"\0" * 65536


@contextmanager
def small_disk(folder: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``folder`` for the block; skips the test if nothing can mount."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a disk-full test mounts a small tmpfs: needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(folder)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def free_bytes(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def fill(folder: Path, leave: int = 0) -> Path:
    """Write ``folder/filler.bin`` until the disk is full, then give back ``leave`` bytes."""
    filler = folder / FILLER
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            os.write(fd, _CHUNK)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    for size in (4096, 1):  # the last partial chunk: fill page by page, then byte by byte
        fd = os.open(filler, os.O_WRONLY | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\0" * size)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler
