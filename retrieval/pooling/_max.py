"""MAX (MAC): the maximum activation of each channel. Tolias, Sicre & Jégou, "Particular object
retrieval with integral max-pooling of CNN activations", ICLR 2016.
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling

__all__ = ["Max"]


class Max(MapPooling):
    name = "max"

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.mac(x)
