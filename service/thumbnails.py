"""JPEG thumbnails of stored images, and a byte-bounded in-memory LRU cache of them.

Ids are never reused and a record's file is not rewritten by the service, so ``(id, size)`` names
one thumbnail for good; a removed image is never looked up (its record is checked first).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

from retrieval import load_image

__all__ = ["ThumbnailCache", "make_thumbnail"]

JPEG_QUALITY = 85


def make_thumbnail(path: Path, size: int, *, max_pixels: int) -> bytes:
    """A JPEG of the image at ``path`` whose longer side is at most ``size``."""
    image = load_image(path, max_pixels=max_pixels)
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class ThumbnailCache:
    """Least-recently-used cache holding at most ``max_bytes`` of thumbnails; thread-safe."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def get(self, key: tuple[int, int]) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[int, int], data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted)
