"""SPoC: sum pooling with a Gaussian centring prior (σ = a third of the distance from the centre to
the nearest border). Babenko & Lempitsky, "Aggregating Deep Convolutional Features for Image
Retrieval", ICCV 2015.
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling

__all__ = ["SPoC"]


class SPoC(MapPooling):
    name = "spoc"

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.spoc(x)
