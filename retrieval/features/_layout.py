"""The spatial-layout descriptor: a feature map averaged on a coarse grid, for near-duplicates.

Two photos of one landmark share channels (their global vectors are close) but put them in
different cells; an edited copy of one photo (resized, re-encoded, lightly cropped, brightened,
greyscale) keeps them in the same cells. The descriptor is the map adaptive-average-pooled to
``grid × grid``, flattened channel-major (``c·grid² + row·grid + col``) and L2-normalised, so two
are compared by a dot product. It is computed from the map the global vector comes from: no extra
forward pass. Stored as float16 (16 KiB per image for 512 channels on a 4 × 4 grid).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

__all__ = ["LAYOUT_GRID", "layout_descriptors"]

LAYOUT_GRID = 4


def layout_descriptors(fmaps: torch.Tensor, grid: int = LAYOUT_GRID) -> npt.NDArray[np.float16]:
    """Feature maps (N, C, h, w) -> (N, C·grid²) unit-norm layout descriptors, float16."""
    if fmaps.ndim != 4 or grid < 1:
        raise ValueError(f"expected maps (N, C, h, w) and grid >= 1, got {tuple(fmaps.shape)}")
    cells = F.adaptive_avg_pool2d(fmaps.detach().float().cpu(), grid).flatten(1)
    unit = F.normalize(cells, dim=1, eps=1e-12)
    return np.ascontiguousarray(unit.numpy().astype(np.float16))
