"""Mixed pooling λ·max + (1 − λ)·avg. Lee, Gallagher & Tu, "Generalizing pooling functions in
convolutional neural networks: mixed, gated, and tree", AISTATS 2016.
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling, Param

__all__ = ["Mixed"]


class Mixed(MapPooling):
    name = "mixed"
    params = (Param("lam", 0.5, "weight λ of the max (1 − λ goes to the average)",
                     low=0.0, high=1.0),)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.mixed(x, lam=float(self.values["lam"]))
