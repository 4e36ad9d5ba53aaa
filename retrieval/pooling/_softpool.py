"""SoftPool: the softmax-weighted mean Σ eᵃ·a / Σ eᵃ of each channel, computed stably. Stergiou,
Poppe & Kalliatakis, "Refining activation downsampling with SoftPool", ICCV 2021.
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling

__all__ = ["SoftPool"]


class SoftPool(MapPooling):
    name = "softpool"

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.softpool(x)
