"""The thumbnail cache: bounded by bytes, least recently used evicted first; and the JPEGs."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from PIL import Image

from service.thumbnails import ThumbnailCache, make_thumbnail
from tests.conftest import scene


def test_eviction_is_by_bytes_least_recently_used_first() -> None:
    cache = ThumbnailCache(max_bytes=100)
    for i in range(4):
        cache.put((i, 64), bytes([i]) * 25)  # 4 x 25 bytes: exactly full
    assert cache.size_bytes == 100
    assert cache.get((0, 64)) == bytes([0]) * 25  # 0 is now the most recently used
    cache.put((4, 64), b"x" * 40)  # needs 40 bytes: evicts 1 and 2 (the oldest), keeps 0 and 3
    assert [cache.get((i, 64)) is not None for i in range(5)] == [True, False, False, True, True]
    assert cache.size_bytes == 25 + 25 + 40
    cache.put((5, 64), b"y" * 10)  # fits in the 10 bytes left: nothing is evicted
    assert cache.size_bytes == 100
    assert cache.get((3, 64)) is not None and cache.get((0, 64)) is not None


def test_replacing_a_key_counts_its_bytes_once() -> None:
    cache = ThumbnailCache(max_bytes=100)
    cache.put((1, 32), b"a" * 30)
    cache.put((1, 32), b"b" * 50)
    assert (cache.size_bytes, cache.get((1, 32))) == (50, b"b" * 50)


def test_a_thumbnail_larger_than_the_cache_is_not_kept() -> None:
    cache = ThumbnailCache(max_bytes=100)
    cache.put((1, 32), b"a" * 60)
    cache.put((2, 32), b"b" * 101)
    assert cache.get((2, 32)) is None
    assert (cache.size_bytes, cache.get((1, 32))) == (60, b"a" * 60)  # nothing evicted for it
    empty = ThumbnailCache(max_bytes=0)  # CBIR_THUMBNAIL_CACHE_BYTES=0 turns the cache off
    empty.put((1, 32), b"a")
    assert (empty.size_bytes, empty.get((1, 32))) == (0, None)


def test_concurrent_puts_stay_within_the_bound() -> None:
    cache = ThumbnailCache(max_bytes=1000)

    def fill(worker: int) -> None:
        for i in range(500):
            cache.put((worker * 1000 + i, 64), b"z" * (1 + (i * 7) % 90))
            cache.get((worker * 1000 + i // 2, 64))

    threads = [threading.Thread(target=fill, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 900 < cache.size_bytes <= 1000


def test_make_thumbnail_is_a_jpeg_within_the_size(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    scene(3, (300, 120)).save(path)
    image = Image.open(io.BytesIO(make_thumbnail(path, 64, max_pixels=10**6)))
    assert (image.format, image.size) == ("JPEG", (64, 26))
