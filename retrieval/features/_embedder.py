"""Images -> L2-normalised float32 descriptors (n, d), the same way for database and queries.

``Embedder`` holds the loaded backbone, the configured :class:`~retrieval.pooling.Pooling` and
the optional :class:`Whitening`. The descriptor of a feature map F is::

    v = pooling.encode(F)            # any registered pooling
    v = v / ||v||
    v = Σ_s v_s / ||Σ_s v_s||        # only with several scales: F_s at each image side
    v = W (v - m); v = v / ||v||     # only with whitening

The embedder never looks at a pooling's name: what is fitted, saved and loaded is whatever the
pooling and the whitening say (``<name>.npz`` in the index directory).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from retrieval._arrays import l2_normalize_rows
from retrieval._atomic import write_atomic
from retrieval.errors import ArtifactError
from retrieval.features._backbone import Backbone, load_backbone
from retrieval.features._config import EmbedderConfig
from retrieval.features._whitening import Whitening
from retrieval.pooling import Pooling, make_pooling
from retrieval.rerank import combine_scales

__all__ = ["Embedder"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


class Embedder:
    """A backbone plus the (fitted) pooling and post-processing of one configuration."""

    def __init__(self, config: EmbedderConfig, backbone: Backbone) -> None:
        self.config = config
        self.backbone = backbone
        self.pooling: Pooling = make_pooling(config.pooling, config.pooling_params)
        self.whitening: Whitening | None = Whitening(config.whiten_dim) if config.whiten else None

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
        return self.pooling.is_fitted and (self.whitening is None or self.whitening.is_fitted)

    @property
    def pooled_dim(self) -> int:
        """Dimension of the pooled vectors, before whitening."""
        return self.pooling.output_dim(self.backbone.channels)

    @property
    def dim(self) -> int:
        return self.whitening.dim if self.whitening is not None else self.pooled_dim

    def pooled(self, fmaps: torch.Tensor) -> F32:
        """Feature maps (N, C, h, w) -> L2-normalised pooled vectors, before whitening."""
        return l2_normalize_rows(self.pooling.encode(fmaps))

    def describe(self, fmaps: torch.Tensor) -> F32:
        """Feature maps (N, C, h, w) -> final descriptors (N, d)."""
        v = self.pooled(fmaps)
        if self.whitening is not None:
            v = self.whitening.apply(v)
        return np.ascontiguousarray(v, dtype=np.float32)

    def pooled_scales(self, per_scale: Sequence[torch.Tensor]) -> F32:
        """Maps of the same images at each scale [(N, C, h_s, w_s)] -> l2n(Σ_s l2n(encode))."""
        return combine_scales([self.pooled(f) for f in per_scale])

    def describe_scales(self, per_scale: Sequence[torch.Tensor]) -> F32:
        """Like :meth:`describe` for one map per configured scale (see :meth:`pooled_scales`)."""
        v = self.pooled_scales(per_scale)
        if self.whitening is not None:
            v = self.whitening.apply(v)
        return np.ascontiguousarray(v, dtype=np.float32)

    def describe_images(self, per_image: Sequence[Sequence[torch.Tensor]]) -> F32:
        """Descriptors (n, d) of images given as their maps (C, h, w) at every scale."""
        if not per_image:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([self.describe_scales([f[None] for f in maps])
                               for maps in per_image])

    def describe_maps(self, fmaps: Sequence[torch.Tensor]) -> F32:
        """Like :meth:`describe` for maps (C, h, w) of possibly different sizes."""
        if not fmaps:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([self.describe(f[None]) for f in fmaps])

    def fit(self, fmaps: Sequence[torch.Tensor],
            scaled: Sequence[Sequence[torch.Tensor]] | None = None) -> None:
        """Learn what the pooling and the whitening learn, from training maps (C, h, w).

        ``scaled`` (optional) holds each image's maps at every configured scale: the pooling
        learns from ``fmaps`` (the first scale), the whitening from the combined vectors.
        """
        self.pooling.fit(fmaps)
        if self.whitening is not None:
            per_image = scaled if scaled is not None else [[f] for f in fmaps]
            self.whitening.fit(np.concatenate([self.pooled_scales([f[None] for f in maps])
                                               for maps in per_image]))
        log.info("fitted on %d training images; descriptor dimension %d", len(fmaps), self.dim)

    def feature_maps(self, images: Sequence[Image.Image]) -> list[list[torch.Tensor]]:
        """Forward each image at each scale (one pass per image and scale) -> maps (C, h, w)."""
        return [[self.backbone.forward(self.backbone.preprocess(im, side)[None])[0].cpu()
                 for side in self.config.image_sides] for im in images]

    def embed(self, images: Sequence[Image.Image]) -> F32:
        """RGB images -> descriptors (n, d); the query path (every configured scale)."""
        return self.describe_images(self.feature_maps(images))

    def _fitted_steps(self) -> list[tuple[str, Pooling | Whitening]]:
        steps: list[tuple[str, Pooling | Whitening]] = []
        if self.pooling.learns:
            steps.append((self.pooling.name, self.pooling))
        if self.whitening is not None:
            steps.append((self.whitening.name, self.whitening))
        return steps

    def save_state(self, directory: Path) -> None:
        """Write the fitted state into an index directory (``<step>.npz``, atomically)."""
        for name, step in self._fitted_steps():
            _save_arrays(Path(directory) / f"{name}.npz", step.state_arrays())

    def load_state(self, directory: Path) -> None:
        """Read the fitted state an index directory holds for this configuration."""
        for name, step in self._fitted_steps():
            step.load_state(_load_arrays(Path(directory) / f"{name}.npz"))


def _save_arrays(path: Path, arrays: Mapping[str, F32]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    write_atomic(path, buffer.getvalue())


def _load_arrays(path: Path) -> dict[str, F32]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k].astype(np.float32) for k in data.files}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is missing or unreadable: {exc}") from exc
