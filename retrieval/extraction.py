"""The feature-extraction pipeline: decode and resize in worker threads, forward in batches.

Images are read, hashed, decoded and resized by a small thread pool (Pillow releases the GIL while
decoding and resizing) while the network computes. Decoded images are grouped into batches of
equal size (a bucket per (H, W)), so a batch is one tensor and one forward pass; a bucket is sent
when it is full, when too many images are waiting, or at the end. Unreadable files become
:class:`Failure` items and never stop the run.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import torch
from PIL import Image

from retrieval.backbone import Backbone
from retrieval.errors import ImageDecodeError
from retrieval.images import DEFAULT_MAX_PIXELS, load_image, sha256_hex

__all__ = ["Batch", "Decoded", "Failure", "extract_batches"]

log = logging.getLogger(__name__)

K = TypeVar("K")
Source = Path | bytes


@dataclass(frozen=True)
class Decoded(Generic[K]):
    """One decoded image: its key, original size, content hash and resized uint8 tensor."""

    key: K
    width: int
    height: int
    sha256: str
    pixels: torch.Tensor  # uint8 (3, H, W)


@dataclass(frozen=True)
class Failure(Generic[K]):
    """An input that could not be decoded, with the reason."""

    key: K
    error: ImageDecodeError


@dataclass(frozen=True)
class Batch(Generic[K]):
    """Images of one size and their feature maps (N, C, h, w), on the CPU."""

    items: list[Decoded[K]]
    fmaps: torch.Tensor


def decode(
    key: K, source: Source, preprocess: Callable[[Image.Image], torch.Tensor], max_pixels: int
) -> Decoded[K] | Failure[K]:
    """Read, hash, decode and preprocess one input; a bad input becomes a Failure."""
    name = str(key)
    try:
        data = source if isinstance(source, bytes) else _read(source, name)
        image = load_image(data, name=name, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        return Failure(key, exc)
    return Decoded(key, image.width, image.height, sha256_hex(data), preprocess(image))


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(name, f"cannot read file: {exc.strerror or exc}") from exc


def extract_batches(
    backbone: Backbone,
    sources: Iterable[tuple[K, Source]],
    *,
    max_side: int,
    batch_size: int = 8,
    workers: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[Batch[K] | Failure[K]]:
    """Feature maps for every source, in batches of equal-size images; failures as they occur."""

    def prep(image: Image.Image) -> torch.Tensor:
        return backbone.preprocess(image, max_side)

    buckets = _Buckets[K](batch_size)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        for item in _bounded_map(pool, sources, prep, max_pixels, depth=2 * batch_size + workers):
            if isinstance(item, Failure):
                yield item
                continue
            for ready in buckets.push(item):
                yield Batch(ready, backbone.forward(torch.stack([d.pixels for d in ready])).cpu())
        for ready in buckets.drain():
            yield Batch(ready, backbone.forward(torch.stack([d.pixels for d in ready])).cpu())


def _bounded_map(
    pool: ThreadPoolExecutor,
    sources: Iterable[tuple[K, Source]],
    prep: Callable[[Image.Image], torch.Tensor],
    max_pixels: int,
    depth: int,
) -> Iterator[Decoded[K] | Failure[K]]:
    """Decode in the pool, in order, with at most ``depth`` inputs in flight."""
    pending: deque[Future[Decoded[K] | Failure[K]]] = deque()
    for key, source in sources:
        pending.append(pool.submit(decode, key, source, prep, max_pixels))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class _Buckets(Generic[K]):
    """Groups decoded images by tensor shape; bounded so memory stays flat."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = max(1, batch_size)
        self.limit = 4 * self.batch_size
        self.by_shape: dict[tuple[int, ...], list[Decoded[K]]] = {}
        self.waiting = 0

    def push(self, item: Decoded[K]) -> Iterator[list[Decoded[K]]]:
        shape = tuple(item.pixels.shape)
        bucket = self.by_shape.setdefault(shape, [])
        bucket.append(item)
        self.waiting += 1
        if len(bucket) >= self.batch_size:
            yield self._take(shape)
        elif self.waiting > self.limit:
            yield self._take(max(self.by_shape, key=lambda s: len(self.by_shape[s])))

    def drain(self) -> Iterator[list[Decoded[K]]]:
        while self.by_shape:
            yield self._take(next(iter(self.by_shape)))

    def _take(self, shape: tuple[int, ...]) -> list[Decoded[K]]:
        bucket = self.by_shape.pop(shape)
        self.waiting -= len(bucket)
        return bucket
