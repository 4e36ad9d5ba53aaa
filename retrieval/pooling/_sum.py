"""SUM (SPoC without the centring prior): the sum over the spatial cells. Babenko & Lempitsky,
"Aggregating Deep Convolutional Features for Image Retrieval", ICCV 2015.
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling

__all__ = ["Sum"]


class Sum(MapPooling):
    name = "sum"

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.spoc_sum(x)
