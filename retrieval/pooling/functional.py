"""Pure poolings: feature maps x (N, C, h, w) -> vectors (N, C), not L2-normalised.

These are the closed forms the pooling objects (:mod:`retrieval.pooling`) wrap; each cites its
paper. They do not check shapes: :class:`~retrieval.pooling.MapPooling` does, once.
"""

from __future__ import annotations

import torch

__all__ = ["avg", "gem", "mac", "spoc_sum"]


def spoc_sum(x: torch.Tensor) -> torch.Tensor:
    """SUM: sum over the spatial cells (Babenko & Lempitsky, ICCV 2015, without the prior)."""
    return x.sum(dim=(2, 3))


def avg(x: torch.Tensor) -> torch.Tensor:
    """AVE: mean over the spatial cells."""
    return x.mean(dim=(2, 3))


def mac(x: torch.Tensor) -> torch.Tensor:
    """MAC: maximum activation of convolutions (Tolias et al., ICLR 2016)."""
    return x.amax(dim=(2, 3))


def gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """GeM: (mean(clamp(x, eps)^p))^(1/p) (Radenović et al., TPAMI 2018)."""
    return x.clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)
