"""JPEG thumbnails of stored images, and a byte-bounded in-memory LRU cache of them.

Ids are never reused and a record's file is not rewritten by the service, so ``(id, size)`` names
one thumbnail for good; a removed image is never looked up (its record is checked first).
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from cachetools import LRUCache

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
    """Least-recently-used cache holding at most ``max_bytes`` of thumbnails; thread-safe.

    ``cachetools.LRUCache`` sized by ``len`` keeps the order and the byte count; the lock makes it
    safe for the thread pool the file route runs in (cachetools caches are not thread-safe).
    """

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: LRUCache[tuple[int, int], bytes] = LRUCache(max_bytes, getsizeof=len)
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return int(self._items.currsize)

    def get(self, key: tuple[int, int]) -> bytes | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple[int, int], data: bytes) -> None:
        """Cache ``data``, evicting the least recently used; one over ``max_bytes`` is not kept."""
        if len(data) > self.max_bytes:
            return
        with self._lock:
            self._items[key] = data
