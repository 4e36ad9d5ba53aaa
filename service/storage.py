"""Uploaded image files: content-addressed, written atomically and fsynced before indexing.

A file is stored as ``<data_dir>/<sha256><suffix>`` (the suffix from the decoded format, never
from the client's file name): written to a temporary file, fsynced, renamed into place, then the
directory is fsynced, so once :func:`store_file` returns the bytes survive a crash. The same
content uploaded twice is one file.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from retrieval import ALLOWED_FORMATS, format_suffix, fsync_directory, sha256_hex, write_atomic

__all__ = ["image_suffix", "store_file"]



def image_suffix(data: bytes) -> str:
    """File suffix of the format of ``data`` (already known to decode)."""
    with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
        return format_suffix(image.format)


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) durably if it does not exist."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    fsync_directory(folder.parent)


def store_file(folder: Path, data: bytes, suffix: str) -> Path:
    """Write ``data`` durably as ``folder/<sha256><suffix>``; returns its absolute path."""
    ensure_dir(folder)
    target = (folder / f"{sha256_hex(data)}{suffix}").resolve()
    if target.is_file() and target.stat().st_size == len(data):
        return target
    write_atomic(target, data)
    return target
