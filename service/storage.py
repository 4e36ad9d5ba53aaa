"""Uploaded image files: content-addressed, written atomically and fsynced before indexing.

A file is stored as ``<data_dir>/<sha256><suffix>`` (the suffix from the decoded format, never
from the client's file name): written to a temporary file, fsynced, renamed into place, then the
directory is fsynced, so once :func:`store_file` returns the bytes survive a crash. The same
content uploaded twice is one file.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image

from retrieval.images import ALLOWED_FORMATS, sha256_hex

__all__ = ["SUFFIXES", "image_suffix", "store_file"]

SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif",
            "BMP": ".bmp", "TIFF": ".tif"}


def image_suffix(data: bytes) -> str:
    """File suffix of the format of ``data`` (already known to decode)."""
    with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
        return SUFFIXES.get(image.format or "", ".img")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) durably if it does not exist."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    _fsync_dir(folder.parent)


def store_file(folder: Path, data: bytes, suffix: str) -> Path:
    """Write ``data`` durably as ``folder/<sha256><suffix>``; returns its absolute path."""
    ensure_dir(folder)
    target = (folder / f"{sha256_hex(data)}{suffix}").resolve()
    if target.is_file() and target.stat().st_size == len(data):
        return target
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return target
