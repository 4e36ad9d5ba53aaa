"""An on-disk cache of backbone feature maps, so a benchmark is forwarded through the network once.

Layout: ``<root>/<backbone>-<max_side>-<namespace>/<ab>/<key>.npy``, one ``.npy`` per image (or
query crop), with ``about.json`` beside the shards saying what the namespace stands for.

* The *namespace* is a hash of everything that decides a map's values: backbone name, weights
  identity (``Backbone.weights_id``: the file's sha256, ``imagenet:<enum>`` or ``random:seed=N``),
  ``max_side``, storage dtype and :data:`CACHE_VERSION`. Other settings never share files.
* The *key* is a hash of the image's resolved path, byte size and modification time (ns), and the
  crop box for a query crop. An edited or replaced file gets a new key; its stale entry stays
  until the cache folder is deleted (deleting it is always safe).
* Maps are stored as float16 by default (half the disk of float32; a map with a value beyond
  float16's range is stored as float32 instead, never clipped) and read back as float32.
* Writes go to a temporary file renamed into place, so a reader never sees half a file; an
  unreadable entry counts as a miss and is rewritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from retrieval._atomic import write_atomic
from retrieval.errors import ConfigError

__all__ = ["CACHE_VERSION", "CacheDtype", "FeatureCache", "image_key"]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
CacheDtype = Literal["float16", "float32"]
_F16_MAX = float(np.finfo(np.float16).max)


def _digest(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def image_key(path: Path, box: Sequence[float] | None = None) -> str:
    """Cache key of an image file (its resolved path, size and mtime) and an optional crop box."""
    resolved = path.resolve()
    stat = resolved.stat()
    crop = None if box is None else [float(v) for v in box]
    return _digest([str(resolved), stat.st_size, stat.st_mtime_ns, crop])


@dataclass(frozen=True)
class _Identity:
    backbone: str
    weights_id: str
    max_side: int
    dtype: str

    def namespace(self) -> str:
        about = {**self.__dict__, "version": CACHE_VERSION}
        return f"{self.backbone}-{self.max_side}-{_digest(about)[:16]}"


class FeatureCache:
    """Feature maps (C, h, w) by :func:`image_key`, for one backbone/weights/max_side/dtype."""

    def __init__(
        self, root: Path, *, backbone: str, weights_id: str, max_side: int,
        dtype: CacheDtype = "float16",
    ) -> None:
        if dtype not in ("float16", "float32"):
            raise ConfigError(f"cache dtype must be float16 or float32, got {dtype!r}")
        identity = _Identity(backbone, weights_id, max_side, dtype)
        self.dtype = dtype
        self.directory = Path(root) / identity.namespace()
        self.directory.mkdir(parents=True, exist_ok=True)
        about = self.directory / "about.json"
        if not about.exists():
            text = json.dumps({**identity.__dict__, "version": CACHE_VERSION}, indent=2)
            about.write_text(text + "\n", encoding="utf-8")

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npy"

    def __contains__(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> torch.Tensor | None:
        """The cached map as float32 (C, h, w), or None when absent or unreadable."""
        path = self._path(key)
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            log.warning("feature cache: ignoring unreadable %s (%s)", path, exc)
            path.unlink(missing_ok=True)
            return None
        if array.ndim != 3:
            log.warning("feature cache: ignoring %s of shape %s", path, array.shape)
            path.unlink(missing_ok=True)
            return None
        return torch.from_numpy(array.astype(np.float32))

    def put(self, key: str, fmap: torch.Tensor) -> None:
        """Store one map (C, h, w), atomically (:func:`~retrieval._atomic.write_atomic`)."""
        array = fmap.detach().float().cpu().numpy()
        if array.ndim != 3:
            raise ConfigError(f"a feature map is (C, h, w), got shape {array.shape}")
        if self.dtype == "float16" and float(np.abs(array).max(initial=0.0)) < _F16_MAX:
            array = array.astype(np.float16)
        path = self._path(key)
        path.parent.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        write_atomic(path, buffer.getvalue())
