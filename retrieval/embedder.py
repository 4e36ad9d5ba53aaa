"""Images -> L2-normalised float32 descriptors (n, d), the same way for database and queries.

``EmbedderConfig`` is everything that decides what a vector means (it goes into the manifest);
``Embedder`` holds the loaded backbone and the fitted state (MOP/VLAD codebooks and PCAs,
PCA-whitening). The descriptor of a feature map F is::

    v = pool(F)            # sum / avg / max / gem, or the MOP/VLAD encoding
    v = v / ||v||
    v = W (v - m); v = v / ||v||     # only with whitening
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from retrieval.backbone import BACKBONES, Backbone, load_backbone
from retrieval.errors import ArtifactError, ConfigError, UnknownNameError
from retrieval.pca import PCA
from retrieval.pooling import POOLINGS, get_pooling, l2_normalize
from retrieval.vlad import MopParams, MopVlad

__all__ = ["POOLING_NAMES", "Embedder", "EmbedderConfig"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
POOLING_NAMES = (*POOLINGS, "mop")
MOP_FILE = "mop.npz"
WHITEN_FILE = "whitening.npz"


@dataclass(frozen=True)
class EmbedderConfig:
    """What a descriptor means. Runtime choices (device, batch size) are not part of it."""

    backbone: str = "vgg16"
    weights: str = "imagenet"
    max_side: int | None = None
    pooling: str = "sum"
    gem_p: float = 3.0
    mop: MopParams = field(default_factory=MopParams)
    whiten: bool = False
    whiten_dim: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise UnknownNameError("backbone", self.backbone, BACKBONES)
        if self.pooling not in POOLING_NAMES:
            raise UnknownNameError("pooling", self.pooling, POOLING_NAMES)
        if self.max_side is not None and self.max_side < 32:
            raise ConfigError(f"max_side must be at least 32, got {self.max_side}")

    @property
    def image_side(self) -> int:
        """The longer side images are resized to."""
        return self.max_side or BACKBONES[self.backbone].default_max_side

    @property
    def needs_training(self) -> bool:
        return self.pooling == "mop" or self.whiten

    def pooling_params(self) -> dict[str, float | int | str]:
        if self.pooling == "gem":
            return {"p": self.gem_p}
        if self.pooling == "mop":
            m = self.mop
            return {"k": m.k, "regions": ",".join(map(str, m.regions)), "pca_dim": m.pca_dim,
                    "seed": m.seed}
        return {}


class Embedder:
    """A backbone plus the (fitted) pooling and post-processing of one configuration."""

    def __init__(self, config: EmbedderConfig, backbone: Backbone) -> None:
        self.config = config
        self.backbone = backbone
        self.mop: MopVlad | None = None
        self.whitening: PCA | None = None
        self._pool = None if config.pooling == "mop" else get_pooling(
            config.pooling, config.pooling_params() or None)

    @classmethod
    def create(
        cls, config: EmbedderConfig, *, device: str = "cpu", weights_file: str | None = None,
        allow_download: bool = True, precision: str = "fp32", channels_last: bool = False,
    ) -> Embedder:
        """Load the backbone; ``weights_file`` overrides where ``config.weights`` is read from.

        ``precision`` and ``channels_last`` are runtime options of :class:`Backbone`.
        """
        backbone = load_backbone(config.backbone, weights_file or config.weights, device=device,
                                 seed=config.seed, allow_download=allow_download,
                                 precision=precision, channels_last=channels_last)
        return cls(config, backbone)

    @property
    def is_fitted(self) -> bool:
        mop_ok = self.config.pooling != "mop" or self.mop is not None
        return mop_ok and (not self.config.whiten or self.whitening is not None)

    @property
    def dim(self) -> int:
        if self.whitening is not None:
            return self.whitening.dim
        if self.config.pooling == "mop":
            if self.mop is None:
                raise ConfigError("MOP/VLAD is not fitted yet")
            return self.mop.dim
        return self.backbone.channels

    def pooled(self, fmaps: torch.Tensor) -> F32:
        """Feature maps (N, C, h, w) -> L2-normalised pooled vectors, before whitening."""
        if self.config.pooling == "mop":
            if self.mop is None:
                raise ConfigError("MOP/VLAD is not fitted: fit() it on training images first")
            return _l2(self.mop.encode(fmaps))
        assert self._pool is not None
        return l2_normalize(self._pool(fmaps.float())).cpu().numpy().astype(np.float32)

    def describe(self, fmaps: torch.Tensor) -> F32:
        """Feature maps (N, C, h, w) -> final descriptors (N, d)."""
        v = self.pooled(fmaps)
        if self.config.whiten:
            if self.whitening is None:
                raise ConfigError("whitening is not fitted: fit() it on training images first")
            v = _l2(self.whitening.apply(v))
        return np.ascontiguousarray(v, dtype=np.float32)

    def describe_maps(self, fmaps: Sequence[torch.Tensor]) -> F32:
        """Like :meth:`describe` for maps (C, h, w) of possibly different sizes."""
        if not fmaps:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([self.describe(f[None]) for f in fmaps])

    def fit(self, fmaps: Sequence[torch.Tensor]) -> None:
        """Learn MOP/VLAD and/or whitening from training feature maps (C, h, w)."""
        if self.config.pooling == "mop":
            self.mop = MopVlad.fit(fmaps, self.config.mop)
        if self.config.whiten:
            pooled = np.concatenate([self.pooled(f[None]) for f in fmaps])
            self.whitening = PCA.fit(pooled, self.config.whiten_dim, whiten=True)
        log.info("fitted on %d training images; descriptor dimension %d", len(fmaps), self.dim)

    def feature_maps(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """Forward each image (one pass per image) -> maps (C, h, w)."""
        side = self.config.image_side
        return [self.backbone.forward(self.backbone.preprocess(im, side)[None])[0].cpu()
                for im in images]

    def embed(self, images: Sequence[Image.Image]) -> F32:
        """RGB images -> descriptors (n, d); the query path."""
        return self.describe_maps(self.feature_maps(images))

    def save_state(self, directory: Path) -> None:
        """Write the fitted state into an index directory."""
        if self.mop is not None:
            with (directory / MOP_FILE).open("wb") as fh:
                np.savez(fh, allow_pickle=False, **self.mop.to_arrays())
        if self.whitening is not None:
            self.whitening.save(directory / WHITEN_FILE)

    def load_state(self, directory: Path) -> None:
        """Read the fitted state an index directory holds for this configuration."""
        if self.config.pooling == "mop":
            try:
                with np.load(directory / MOP_FILE) as data:
                    arrays = {k: data[k].astype(np.float32) for k in data.files}
            except (OSError, ValueError) as exc:
                raise ArtifactError(f"{directory / MOP_FILE} is missing or unreadable") from exc
            self.mop = MopVlad.from_arrays(self.config.mop, arrays)
        if self.config.whiten:
            self.whitening = PCA.load(directory / WHITEN_FILE)


def _l2(x: F32) -> F32:
    out: F32 = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return out
