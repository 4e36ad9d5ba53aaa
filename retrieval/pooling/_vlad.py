"""MOP/VLAD: multi-scale orderless pooling of pool5 local descriptors.

After Gong, Wang, Guo & Lazebnik, "Multi-scale Orderless Pooling of Deep Convolutional Activation
Features", ECCV 2014. **This is a variant, not the original.** MOP-CNN ran AlexNet on image
patches at three scales (the whole 256² image, 128² and 64² patches), took the fc7 activations of
each patch, VLAD-encoded the patches of levels 2 and 3 and concatenated the three levels. Here the
local descriptors come from one forward pass: every spatial cell of the pool5 map (C = 512) is a
local descriptor, and coarser scales are made by averaging s × s windows of cells. Exact recipe,
for a feature map F (C, h, w):

1. Level 1 (whole image): SUM-pool F over all cells, L2-normalise (C dims).
2. Levels 2.. (``regions``, default (2, 1): 2×2-cell windows, then single cells): average-pool F
   with an s × s window at stride 1 (s clipped to the map), giving (h−s+1)(w−s+1) descriptors;
   L2-normalise each.
3. VLAD per level against that level's k-means codebook (k centroids, ``faiss.Kmeans``): sum the
   residuals of the descriptors assigned to each centroid (k·C dims), then intra-normalise (L2 per
   centroid block; Arandjelović & Zisserman 2013), signed square root, L2-normalise.
4. PCA per level (fitted on the training VLADs, centred) down to ``pca_dim`` (capped at the training
   set's rank, n − 1), L2-normalise.
5. Concatenate the levels; the embedder L2-normalises the result (each level weighs the same).

The codebooks and PCAs are learned when the index is built, on a sample of the collection or on a
separate training folder, and saved with the index as ``mop.npz``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from retrieval._arrays import l2_normalize_rows
from retrieval._pca import PCA
from retrieval.errors import ArtifactError, ConfigError

__all__ = ["MopParams", "MopVlad", "VladLevel", "local_descriptors", "vlad_encode"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MopParams:
    """Settings of MOP/VLAD; they are recorded in the index manifest."""

    k: int = 32
    regions: tuple[int, ...] = (2, 1)
    pca_dim: int = 512
    seed: int = 0
    max_descriptors: int = 200_000

    def __post_init__(self) -> None:
        if self.k < 1 or self.pca_dim < 1 or not self.regions or min(self.regions) < 1:
            raise ConfigError(f"invalid MOP parameters: {self}")



def local_descriptors(fmap: torch.Tensor, region: int) -> F32:
    """(C, h, w) map -> L2-normalised descriptors of s×s windows at stride 1, shape (m, C)."""
    c, h, w = fmap.shape
    s = min(region, h, w)
    pooled = F.avg_pool2d(fmap.detach().float().cpu()[None], kernel_size=s, stride=1)[0]
    desc = pooled.reshape(c, -1).T.contiguous().numpy()
    return l2_normalize_rows(desc)


def vlad_encode(desc: F32, centroids: F32) -> F32:
    """VLAD of descriptors (m, C) against centroids (k, C): intra-norm, sqrt, L2 -> (k·C,)."""
    k, c = centroids.shape
    d2 = (desc**2).sum(1, keepdims=True) - 2 * desc @ centroids.T + (centroids**2).sum(1)
    assign = np.argmin(d2, axis=1)
    residuals = np.zeros((k, c), dtype=np.float32)
    np.add.at(residuals, assign, desc - centroids[assign])
    residuals = l2_normalize_rows(residuals)
    v = np.sign(residuals) * np.sqrt(np.abs(residuals))
    return l2_normalize_rows(v.reshape(-1))


@dataclass(frozen=True)
class VladLevel:
    """One fitted level: window size, codebook (k, C) and PCA of its VLADs."""

    region: int
    centroids: F32
    pca: PCA

    def encode(self, fmap: torch.Tensor) -> F32:
        v = vlad_encode(local_descriptors(fmap, self.region), self.centroids)
        out: F32 = l2_normalize_rows(self.pca.apply(v[None]))[0]
        return out


@dataclass(frozen=True)
class MopVlad:
    """A fitted MOP/VLAD encoder."""

    params: MopParams
    channels: int
    levels: tuple[VladLevel, ...]

    @property
    def dim(self) -> int:
        return self.channels + sum(level.pca.dim for level in self.levels)

    def encode(self, fmaps: torch.Tensor) -> F32:
        """Feature maps (N, C, h, w) -> MOP vectors (N, dim), not yet L2-normalised as a whole."""
        out = np.empty((fmaps.shape[0], self.dim), dtype=np.float32)
        for i, fmap in enumerate(fmaps):
            glob = fmap.detach().float().cpu().sum(dim=(1, 2)).numpy()[None]
            parts = [l2_normalize_rows(glob)[0]] + [level.encode(fmap) for level in self.levels]
            out[i] = np.concatenate(parts)
        return out

    @classmethod
    def fit(cls, fmaps: Sequence[torch.Tensor], params: MopParams) -> MopVlad:
        """Learn one codebook and one PCA per level from training maps, each (C, h, w)."""
        if len(fmaps) < 2:
            raise ConfigError(f"MOP/VLAD needs at least 2 training images, got {len(fmaps)}")
        channels = int(fmaps[0].shape[0])
        levels = tuple(_fit_level(fmaps, region, params) for region in params.regions)
        return cls(params, channels, levels)

    def to_arrays(self) -> dict[str, F32]:
        arrays: dict[str, F32] = {}
        for i, level in enumerate(self.levels):
            arrays[f"centroids_{i}"] = level.centroids
            arrays[f"pca_mean_{i}"] = level.pca.mean
            arrays[f"pca_components_{i}"] = level.pca.components
        return arrays

    @classmethod
    def from_arrays(cls, params: MopParams, arrays: dict[str, F32]) -> MopVlad:
        try:
            levels = tuple(
                VladLevel(region, arrays[f"centroids_{i}"],
                          PCA(arrays[f"pca_mean_{i}"], arrays[f"pca_components_{i}"]))
                for i, region in enumerate(params.regions)
            )
        except KeyError as exc:
            raise ArtifactError(f"MOP/VLAD state lacks {exc}") from exc
        return cls(params, int(levels[0].centroids.shape[1]), levels)


def _fit_level(fmaps: Sequence[torch.Tensor], region: int, params: MopParams) -> VladLevel:
    desc = np.concatenate([local_descriptors(f, region) for f in fmaps])
    rng = np.random.default_rng(params.seed)
    if len(desc) > params.max_descriptors:
        desc = desc[rng.choice(len(desc), params.max_descriptors, replace=False)]
    if len(desc) < params.k:
        raise ConfigError(
            f"MOP/VLAD level {region}x{region}: {len(desc)} local descriptors, "
            f"fewer than k={params.k}"
        )
    kmeans = faiss.Kmeans(desc.shape[1], params.k, niter=20, seed=params.seed, verbose=False)
    kmeans.train(np.ascontiguousarray(desc, dtype=np.float32))
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    vlads = np.stack([vlad_encode(local_descriptors(f, region), centroids) for f in fmaps])
    pca = PCA.fit(vlads, params.pca_dim)
    log.info("MOP level %dx%d: k=%d, VLAD %d -> PCA %d", region, region, params.k,
             vlads.shape[1], pca.dim)
    return VladLevel(region, centroids, pca)
