"""Feature maps of a benchmark's images, each forwarded once and then read from the cache.

A :class:`MapRequest` is an image file, or a crop of one (a landmark query's box). A database
image is resized so its longer side is ``max_side`` (:meth:`Backbone.preprocess`, as
``cbir index build`` does). A query crop is cut from the *full-resolution* image and scaled by the
factor its full image gets, ``max_side / max(W, H)`` — not to ``max_side`` — so the query's
objects have the size they have in the database (the protocol of Radenović et al.'s
cnnimageretrieval-pytorch and of the revisited Oxford/Paris evaluation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from retrieval.errors import ConfigError, ImageDecodeError
from retrieval.evaluation._datasets import BoundingBox
from retrieval.evaluation._map_cache import FeatureCache, image_key
from retrieval.features._backbone import MIN_SIDE, Backbone
from retrieval.features._extraction import Failure, extract_batches
from retrieval.images import load_image

__all__ = ["FeatureMaps", "MapRequest", "MapStats", "crop_pixels", "scaled_crop"]

log = logging.getLogger(__name__)

Progress = Callable[[int], object]


@dataclass(frozen=True)
class MapRequest:
    """An image file, or the region ``box`` (x1, y1, x2, y2 at full resolution) of one."""

    path: Path
    box: BoundingBox | None = None


@dataclass
class MapStats:
    """What :meth:`FeatureMaps.ensure` did: maps found in the cache, forwarded, failed."""

    cached: int = 0
    forwarded: int = 0
    failed: list[str] = field(default_factory=list)


def scaled_crop(
    width: int, height: int, box: BoundingBox, max_side: int
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """Integer crop box inside a ``width`` x ``height`` image and the crop's size after scaling.

    The scale is the full image's, ``max_side / max(width, height)``; each side is at least
    :data:`~retrieval.features._backbone.MIN_SIDE` so the backbone still yields a map.
    """
    x1, y1, x2, y2 = box
    left, top = min(max(0, round(x1)), width - 1), min(max(0, round(y1)), height - 1)
    right, bottom = max(min(width, round(x2)), left + 1), max(min(height, round(y2)), top + 1)
    scale = max_side / max(width, height)
    size = (max(MIN_SIDE, round((right - left) * scale)),
            max(MIN_SIDE, round((bottom - top) * scale)))
    return (left, top, right, bottom), size


def crop_pixels(image: Image.Image, box: BoundingBox, max_side: int) -> torch.Tensor:
    """uint8 (3, h, w): ``box`` cut from the full image, scaled like the full image would be."""
    region, size = scaled_crop(image.width, image.height, box, max_side)
    crop = image.convert("RGB").crop(region)
    if crop.size != size:
        crop = crop.resize(size, Image.Resampling.BILINEAR)  # as Backbone.preprocess
    return torch.from_numpy(np.array(crop, dtype=np.uint8)).permute(2, 0, 1).contiguous()


class FeatureMaps:
    """Maps of requested images at one ``max_side``: computed once, then read from ``cache``."""

    def __init__(
        self, backbone: Backbone, cache: FeatureCache, *, max_side: int, batch_size: int = 8,
        workers: int = 2,
    ) -> None:
        if max_side < MIN_SIDE:
            raise ConfigError(f"max_side must be at least {MIN_SIDE}, got {max_side}")
        self.backbone = backbone
        self.cache = cache
        self.max_side = max_side
        self.batch_size = batch_size
        self.workers = workers
        self.stats = MapStats()
        self._keys: dict[MapRequest, str | None] = {}

    def key(self, request: MapRequest) -> str | None:
        """The cache key of ``request``; None when the file cannot be read (a failure)."""
        if request not in self._keys:
            try:
                self._keys[request] = image_key(request.path, request.box)
            except OSError as exc:
                log.warning("cannot read %s: %s", request.path, exc.strerror or exc)
                self._keys[request] = None
        return self._keys[request]

    def plan(self, requests: Iterable[MapRequest]) -> list[MapRequest]:
        """The distinct requests the cache lacks (to :meth:`forward`); counts hits and failures."""
        todo: list[MapRequest] = []
        for request in dict.fromkeys(requests):
            key = self.key(request)
            if key is None:
                self.stats.failed.append(str(request.path))
            elif key in self.cache:
                self.stats.cached += 1
            else:
                todo.append(request)
        return todo

    def forward(self, todo: Sequence[MapRequest], on_progress: Progress | None = None) -> None:
        """Compute and cache the maps of ``todo``: whole images in batches, crops one by one."""
        self._forward_whole([r for r in todo if r.box is None], on_progress)
        for request in todo:
            if request.box is not None:
                self._forward_crop(request)
                if on_progress is not None:
                    on_progress(1)
        log.info("feature maps: %d cached, %d forwarded, %d failed", self.stats.cached,
                 self.stats.forwarded, len(self.stats.failed))

    def ensure(self, requests: Iterable[MapRequest], on_progress: Progress | None = None) -> None:
        """Make sure every request's map is cached, forwarding each missing one once."""
        self.forward(self.plan(requests), on_progress)

    def _forward_whole(self, requests: Sequence[MapRequest], on_progress: Progress | None) -> None:
        items = extract_batches(self.backbone, [(r, r.path) for r in requests],
                                max_side=self.max_side, batch_size=self.batch_size,
                                workers=self.workers)
        for item in items:
            if isinstance(item, Failure):
                self._failed(item.key, item.error)
                done = 1
            else:
                for decoded, fmap in zip(item.items, item.fmaps, strict=True):
                    self._store(decoded.key, fmap)
                done = len(item.items)
            if on_progress is not None:
                on_progress(done)

    def _forward_crop(self, request: MapRequest) -> None:
        assert request.box is not None
        try:
            image = load_image(request.path)
        except ImageDecodeError as exc:
            self._failed(request, exc)
            return
        pixels = crop_pixels(image, request.box, self.max_side)
        self._store(request, self.backbone.forward(pixels[None])[0].cpu())

    def _store(self, request: MapRequest, fmap: torch.Tensor) -> None:
        key = self.key(request)
        assert key is not None
        self.cache.put(key, fmap)
        self.stats.forwarded += 1

    def _failed(self, request: MapRequest, error: Exception) -> None:
        log.warning("skipped %s", error)
        self.stats.failed.append(str(request.path))
        self._keys[request] = None

    def get(self, request: MapRequest) -> torch.Tensor | None:
        """The map (C, h, w) of an :meth:`ensure`-d request, float32; None if it failed."""
        key = self.key(request)
        if key is None:
            return None
        fmap = self.cache.get(key)
        if fmap is None:  # removed or corrupted since ensure(): compute it again
            self.ensure([request])
            key = self.key(request)
            fmap = None if key is None else self.cache.get(key)
        return fmap
