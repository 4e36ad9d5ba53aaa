"""LSE, log-sum-exp pooling with a temperature r: (1/r)·log(mean exp(r·a)); r → 0 is the average,
r → ∞ the max. Pinheiro & Collobert, "From image-level to pixel-level labeling with convolutional
networks", CVPR 2015.
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling, Param

__all__ = ["LSE"]


class LSE(MapPooling):
    name = "lse"
    params = (Param("r", 0.1, "LSE temperature r (small: average, large: max)",
                     low=1e-4, high=100.0),)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.lse(x, r=float(self.values["r"]))
