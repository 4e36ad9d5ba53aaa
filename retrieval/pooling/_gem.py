"""GeM, the generalized mean (power average) with a fixed exponent p.

Radenović, Tolias & Chum, "Fine-tuning CNN Image Retrieval with No Human Annotation", TPAMI 2018:
(mean(clamp(x, eps)^p))^(1/p); p = 1 is AVE, p → ∞ tends to MAX.
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling, Param

__all__ = ["GeM"]


class GeM(MapPooling):
    name = "gem"
    params = (Param("p", 3.0, "GeM exponent (1 = average, large = max)", low=1e-3, high=1e3),)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.gem(x, p=float(self.values["p"]))
