"""AVE: the mean over the spatial cells (the same ranking as SUM after L2 normalisation on one
image).
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling

__all__ = ["Avg"]


class Avg(MapPooling):
    name = "avg"

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.avg(x)
