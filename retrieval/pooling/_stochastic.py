"""Stochastic pooling in expectation: each activation weighted by its share a / Σa of the channel,
i.e. Σa² / Σa. Zeiler & Fergus, "Stochastic pooling for regularization of deep convolutional
neural networks", ICLR 2013 (its test-time form).
"""

from __future__ import annotations

import torch

from retrieval.pooling import functional
from retrieval.pooling._base import MapPooling

__all__ = ["Stochastic"]


class Stochastic(MapPooling):
    name = "stochastic"

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return functional.stochastic(x)
