"""R-MAC, regional maximum activation of convolutions: the MAC of each region of a fixed grid
(L levels, overlap 0.4, the whole map as one more region), L2-normalised and summed. Tolias, Sicre &
Jégou, "Particular object retrieval with integral max-pooling of CNN activations", ICLR 2016; the
grid exactly as cnnimageretrieval-pytorch (:func:`~retrieval.pooling.functional.rmac_regions`).
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling, Param

__all__ = ["RMac"]


class RMac(MapPooling):
    name = "rmac"
    params = (Param("levels", 3, "R-MAC grid levels L (region sides 2·min(h, w)/(l + 1))",
                     low=1, high=8),)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.rmac(x, L=int(self.values["levels"]))
