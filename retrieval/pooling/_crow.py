"""CroW, cross-dimensional weighting: a sum of the cells weighted in space by the (power-normalised)
channel sum and in channels by an idf of their sparsity. Kalantidis, Mellina & Osindero,
"Cross-dimensional weighting for aggregated deep convolutional features", ECCV Workshops 2016.
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling, Param

__all__ = ["CroW"]


class CroW(MapPooling):
    name = "crow"
    params = (Param("a", 2.0, "CroW spatial norm exponent a", low=0.1, high=10.0),
              Param("b", 2.0, "CroW spatial power-normalisation b", low=0.1, high=10.0))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.crow(x, a=float(self.values["a"]), b=float(self.values["b"]))
